"""The plugin manager: hook specs, the built-in plugins, and installed plugins when asked.

Installed plugins (the ``cohrt_sync`` entry-point group) load into a client
only when that client asks: a library is embedded in apps that did not all ask
for every plugin installed beside it. ``entry_points=True`` loads every
installed one, a list of names loads those (an unknown name raises before
anything is imported), ``False`` none. A plugin that is not asked for is never
imported.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Sequence, Tuple, Union

import pluggy

from . import hookspecs
from .dm import DmRequestRouter
from .errors import BadRequestError
from .hookspecs import PROJECT_NAME, hookimpl

if TYPE_CHECKING:
    from .channel import Channel
    from .models import User

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRYPOINT_GROUP",
    "EntryPointSelection",
    "LifecycleLogger",
    "PresenceTracker",
    "installed_entry_points",
    "load_entry_points",
    "make_plugin_manager",
]

log = logging.getLogger("cohrt_sync.plugins")

#: Entry-point group scanned for installed plugins.
ENTRYPOINT_GROUP = PROJECT_NAME

#: What a client loads from the entry-point group: ``True`` every installed
#: plugin, ``False`` none, or the names of the ones to load.
EntryPointSelection = Union[bool, Sequence[str]]


class LifecycleLogger:
    """Built-in plugin logging connection lifecycle events at INFO."""

    @hookimpl(trylast=True)
    def on_disconnected(self, channel: Channel, reason: str) -> None:
        """Log the drop."""
        log.info("channel %s disconnected: %s", channel.name, reason)

    @hookimpl(trylast=True)
    def on_reconnected(self, channel: Channel, attempts: int, caught_up: int) -> None:
        """Log the recovery."""
        log.info(
            "channel %s reconnected after %d attempt(s), %d message(s) caught up",
            channel.name,
            attempts,
            caught_up,
        )


class PresenceTracker:
    """Built-in plugin logging presence changes at DEBUG; it only observes.

    The channel keeps its roster and decides which joins and leaves are news
    (:class:`cohrt_sync.presence.Roster`) before any ``on_join``/``on_leave``
    runs, so every implementation, this one included, already sees the new
    ``channel.presence``.
    """

    @hookimpl(trylast=True)
    def on_join(self, channel: Channel, user: User) -> None:
        """Log the arrival."""
        if log.isEnabledFor(logging.DEBUG):  # presence is a copy: only when it is shown
            log.debug("channel %s: %s joined (%d present)", channel.name, user.id,
                      len(channel.presence))

    @hookimpl(trylast=True)
    def on_leave(self, channel: Channel, user: User) -> None:
        """Log the departure."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("channel %s: %s left (%d present)", channel.name, user.id,
                      len(channel.presence))


#: Built-in plugins registered on every client, by name.
DEFAULT_PLUGINS: Tuple[Tuple[str, Callable[[], object]], ...] = (
    ("cohrt_sync.presence", PresenceTracker),
    ("cohrt_sync.dm", DmRequestRouter),
    ("cohrt_sync.lifecycle", LifecycleLogger),
)

_loaded_lock = threading.Lock()
# Entry points are imported once per process, each only when first asked for.
_loaded: Dict[str, object] = {}


def installed_entry_points() -> Dict[str, Any]:
    """The installed plugins' entry points by name, without importing any of them.

    :returns: ``{name: importlib.metadata.EntryPoint}``; ``ep.dist`` (3.10+)
        names the distribution that provides it.
    """
    eps: Any = importlib.metadata.entry_points()
    if hasattr(eps, "select"):
        found = list(eps.select(group=ENTRYPOINT_GROUP))
    else:  # pragma: no cover - Python 3.9 returns a dict of group -> entry points
        found = list(eps.get(ENTRYPOINT_GROUP, ()))
    return {ep.name: ep for ep in found}


def _chosen(selection: EntryPointSelection, installed: Mapping[str, Any]) -> List[str]:
    if selection is True:
        return sorted(installed)
    if selection is False:
        return []
    if isinstance(selection, str) or not all(isinstance(n, str) for n in selection):
        raise BadRequestError(
            f"entry_points takes True, False or a list of plugin names, not {selection!r}"
        )
    unknown = [name for name in selection if name not in installed]
    if unknown:
        have = ", ".join(sorted(installed)) or "none"
        raise BadRequestError(
            f"no installed cohrt_sync plugin named {', '.join(map(repr, unknown))} "
            f"(installed: {have}); check the name with `cohrt-sync plugins`"
        )
    return list(dict.fromkeys(selection))


def load_entry_points(selection: EntryPointSelection) -> List[Tuple[str, object]]:
    """Import the selected installed plugins (each at most once per process).

    With ``True``, a plugin that fails to import is logged and skipped, so one
    broken distribution cannot break every client; a plugin asked for by name
    that fails to import raises, because the caller said it needs it.

    :param selection: ``True``, ``False`` or a list of entry-point names.
    :returns: ``(name, plugin object)`` pairs in load order.
    :raises BadRequestError: an unknown name, or a selection of the wrong type.
    :raises ImportError: a plugin named in ``selection`` could not be loaded
        (it failed to import, or its entry point refused its configuration).
    """
    installed = installed_entry_points()
    names = _chosen(selection, installed)
    loaded: List[Tuple[str, object]] = []
    with _loaded_lock:
        for name in names:
            if name not in _loaded:
                try:
                    _loaded[name] = installed[name].load()
                except Exception as e:
                    if selection is True:
                        log.error("skipping cohrt_sync plugin %r: could not be loaded: %s", name, e)
                        continue
                    raise ImportError(
                        f"cohrt_sync plugin {name!r} could not be loaded: {e}"
                    ) from e
            loaded.append((name, _loaded[name]))
    return loaded


def make_plugin_manager(
    plugins: Any = (),
    *,
    entry_points: EntryPointSelection = False,
) -> pluggy.PluginManager:
    """Build a plugin manager with the specs, built-ins, chosen installed and given plugins.

    :param plugins: plugin objects to register.
    :param entry_points: installed plugins to load (:func:`load_entry_points`).
    :raises pluggy.PluginValidationError: when a plugin implements an unknown hook.
    :raises BadRequestError: an unknown plugin name.
    """
    loaded = load_entry_points(entry_points)
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name, factory in DEFAULT_PLUGINS:
        pm.register(factory(), name=name)
    for name, plugin in loaded:
        pm.register(plugin, name=name)
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()
    return pm
