"""The plugin manager (hook specs, built-in and installed plugins) and calling hooks.

Installed plugins are found once per process through the ``cohrt_sync``
entry-point group. ``COHRT_SYNC_LOAD_PLUGINS`` controls autoloading: unset
loads every installed plugin, an empty value loads none, and a comma-separated
list loads only the entry points with those names.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Callable, List, Mapping, Optional, Tuple

import pluggy

from . import hookspecs
from .dm import DmRequestRouter
from .hookspecs import PROJECT_NAME, hookimpl
from .presence import PresenceTracker

if TYPE_CHECKING:
    from .channel import Channel

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRYPOINT_GROUP",
    "ENV_LOAD_PLUGINS",
    "ChannelHooks",
    "call_hook",
    "installed_plugins",
    "make_plugin_manager",
]

log = logging.getLogger("cohrt_sync.plugins")

#: Entry-point group scanned for installed plugins.
ENTRYPOINT_GROUP = PROJECT_NAME
#: Environment variable: unset = load all, ``""`` = none, ``"a,b"`` = only those.
ENV_LOAD_PLUGINS = "COHRT_SYNC_LOAD_PLUGINS"


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


#: Built-in plugins registered on every client, by name.
DEFAULT_PLUGINS: Tuple[Tuple[str, Callable[[], object]], ...] = (
    ("cohrt_sync.presence", PresenceTracker),
    ("cohrt_sync.dm", DmRequestRouter),
    ("cohrt_sync.lifecycle", LifecycleLogger),
)

_installed_lock = threading.Lock()
_installed: Optional[List[Tuple[str, object]]] = None


def _entry_points() -> List[Any]:
    eps: Any = importlib.metadata.entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group=ENTRYPOINT_GROUP))
    # Python 3.9 returns a dict of group -> entry points.
    return list(eps.get(ENTRYPOINT_GROUP, ()))  # pragma: no cover


def installed_plugins() -> List[Tuple[str, object]]:
    """Every plugin in the ``cohrt_sync`` entry-point group, loaded once per process.

    A plugin that fails to import is logged and skipped, so one broken
    distribution cannot break every client.

    :returns: ``(entry-point name, loaded object)`` pairs.
    """
    global _installed
    with _installed_lock:
        if _installed is None:
            found: List[Tuple[str, object]] = []
            for ep in _entry_points():
                try:
                    found.append((ep.name, ep.load()))
                except Exception:
                    log.exception("could not load cohrt_sync plugin %r", ep.name)
            _installed = found
        return list(_installed)


def _allowed(env: Mapping[str, str]) -> Optional[set[str]]:
    raw = env.get(ENV_LOAD_PLUGINS)
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def make_plugin_manager(
    plugins: Any = (),
    *,
    load_entrypoints: bool = True,
    env: Optional[Mapping[str, str]] = None,
) -> pluggy.PluginManager:
    """Build a plugin manager with the specs, defaults, installed and given plugins.

    :param plugins: extra plugin objects to register.
    :param load_entrypoints: load installed plugins (subject to the env variable).
    :param env: environment to read ``COHRT_SYNC_LOAD_PLUGINS`` from
        (default ``os.environ``).
    :raises pluggy.PluginValidationError: when a plugin implements an unknown hook.
    """
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name, factory in DEFAULT_PLUGINS:
        pm.register(factory(), name=name)
    if load_entrypoints:
        allowed = _allowed(os.environ if env is None else env)
        for name, plugin in installed_plugins():
            if allowed is not None and name not in allowed:
                pm.set_blocked(name)
                continue
            if pm.get_plugin(name) is None and not pm.is_registered(plugin):
                pm.register(plugin, name=name)
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()
    return pm


def call_hook(
    pm: pluggy.PluginManager,
    name: str,
    kwargs: Mapping[str, Any],
    on_failure: Callable[[str, BaseException], None],
) -> None:
    """Call every implementation of hook ``name``, isolating failures.

    pluggy stops at the first implementation that raises; here each
    implementation runs on its own so one broken plugin cannot starve the
    others of a message. Wrapper implementations fall back to pluggy's own
    call (all or nothing).

    :param pm: the plugin manager.
    :param name: the hook name.
    :param kwargs: the hook's arguments.
    :param on_failure: called with ``(plugin name, exception)`` for each failure.
    """
    caller = getattr(pm.hook, name)
    impls = caller.get_hookimpls()
    if any(impl.hookwrapper or impl.wrapper for impl in impls):
        try:
            caller(**kwargs)
        except Exception as e:
            on_failure(name, e)
        return
    # get_hookimpls() is in registration order; pluggy calls the last one first.
    for impl in reversed(impls):
        try:
            impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception as e:
            on_failure(f"{impl.plugin_name}.{name}", e)


class ChannelHooks:
    """Calls hooks on behalf of one channel; reached as :attr:`Channel.hooks`.

    Every call gets ``channel=`` filled in, runs each implementation on its own
    (:func:`call_hook`), and a failure is logged and reported to ``on_error``,
    except a failing ``on_error``, which is only logged so it cannot loop.

    :param pm: the client's plugin manager.
    :param channel: the channel the hooks are called for.
    :param logger: where failures are logged.
    """

    __slots__ = ("_channel", "_log", "_pm")

    def __init__(self, pm: pluggy.PluginManager, channel: Channel, logger: logging.Logger) -> None:
        self._pm = pm
        self._channel = channel
        self._log = logger

    def call(self, name: str, **kwargs: Any) -> None:
        """Call every implementation of hook ``name`` with ``channel`` and ``kwargs``.

        :param name: the hook name (see :mod:`cohrt_sync.hookspecs`).
        :param kwargs: the hook's other arguments.
        """
        kwargs["channel"] = self._channel
        call_hook(self._pm, name, kwargs, self._failed)

    def _failed(self, where: str, error: BaseException) -> None:
        self._logged(where, error)
        if where.endswith(".on_error") or where == "on_error":
            return
        call_hook(self._pm, "on_error", {"channel": self._channel, "error": error}, self._logged)

    def _logged(self, where: str, error: BaseException) -> None:
        self._log.exception("channel %s: hook %s raised", self._channel.name, where)
