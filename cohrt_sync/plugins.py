"""The plugin manager (hook specs, built-in and installed plugins) and calling hooks.

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
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import pluggy

from . import hookspecs
from .dm import DmRequestRouter
from .errors import BadRequestError
from .hookspecs import PROJECT_NAME, hookimpl
from .presence import PresenceTracker

if TYPE_CHECKING:
    from .channel import Channel
    from .models import Message

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRYPOINT_GROUP",
    "ChannelHooks",
    "EntryPointSelection",
    "HookPlan",
    "call_hook",
    "hook_plan",
    "installed_entry_points",
    "load_entry_points",
    "make_plugin_manager",
    "run_plan",
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
    run_plan(caller, name, hook_plan(name, caller.get_hookimpls()), kwargs, on_failure)


#: How to call one hook: each implementation's ``(function, argument names,
#: "plugin.hook")`` in pluggy's order, or None when a wrapper is among them.
HookPlan = Optional[Tuple[Tuple[Callable[..., Any], Tuple[str, ...], str], ...]]


def hook_plan(name: str, impls: Sequence[Any]) -> HookPlan:
    """How :func:`call_hook` calls ``impls`` (the hook's ``get_hookimpls()``).

    :param name: the hook name.
    :param impls: its implementations, in registration order.
    """
    if any(impl.hookwrapper or impl.wrapper for impl in impls):
        return None
    # get_hookimpls() is in registration order; pluggy calls the last one first.
    return tuple(
        (impl.function, tuple(impl.argnames), f"{impl.plugin_name}.{name}")
        for impl in reversed(impls)
    )


def run_plan(
    caller: Any,
    name: str,
    plan: HookPlan,
    kwargs: Mapping[str, Any],
    on_failure: Callable[[str, BaseException], None],
) -> None:
    """Call a hook as ``plan`` says, isolating failures (see :func:`call_hook`).

    :param caller: the hook's pluggy caller (``pm.hook.<name>``).
    :param name: the hook name.
    :param plan: from :func:`hook_plan`.
    :param kwargs: the hook's arguments.
    :param on_failure: called with ``(where, exception)`` for each failure.
    """
    if plan is None:
        try:
            caller(**kwargs)
        except Exception as e:
            on_failure(name, e)
        return
    arg = kwargs.__getitem__
    for function, argnames, where in plan:
        try:
            function(*map(arg, argnames))
        except Exception as e:
            on_failure(where, e)


class ChannelHooks:
    """Calls hooks on behalf of one channel; reached as :attr:`Channel.hooks`.

    Every call gets ``channel=`` filled in, runs each implementation on its own
    (:func:`call_hook`), and a failure is logged and reported to ``on_error``,
    except a failing ``on_error``, which is only logged so it cannot loop.

    :param pm: the client's plugin manager.
    :param channel: the channel the hooks are called for.
    :param logger: where failures are logged.
    """

    __slots__ = ("_channel", "_log", "_plans", "_pm")

    def __init__(self, pm: pluggy.PluginManager, channel: Channel, logger: logging.Logger) -> None:
        self._pm = pm
        self._channel = channel
        self._log = logger
        # Per hook: the implementations a plan was made for, and the plan. A
        # plugin registered or unregistered since changes the list, so the
        # plan is remade; otherwise a call costs a list copy and compare.
        self._plans: Dict[str, Tuple[List[Any], HookPlan]] = {}

    def call(self, name: str, **kwargs: Any) -> None:
        """Call every implementation of hook ``name`` with ``channel`` and ``kwargs``.

        :param name: the hook name (see :mod:`cohrt_sync.hookspecs`).
        :param kwargs: the hook's other arguments.
        """
        kwargs["channel"] = self._channel
        caller = getattr(self._pm.hook, name)
        run_plan(caller, name, self._plan(name, caller), kwargs, self._failed)

    def message(self, message: Message) -> None:
        """Call ``on_message`` with ``message``: :meth:`call` for the hook every message runs.

        :param message: the message to deliver.
        """
        caller = self._pm.hook.on_message
        run_plan(
            caller,
            "on_message",
            self._plan("on_message", caller),
            {"channel": self._channel, "message": message},
            self._failed,
        )

    def _plan(self, name: str, caller: Any) -> HookPlan:
        impls = caller.get_hookimpls()
        known = self._plans.get(name)
        if known is None or known[0] != impls:
            known = (impls, hook_plan(name, impls))
            self._plans[name] = known
        return known[1]

    def _failed(self, where: str, error: BaseException) -> None:
        self._logged(where, error)
        if where.endswith(".on_error") or where == "on_error":
            return
        call_hook(self._pm, "on_error", {"channel": self._channel, "error": error}, self._logged)

    def _logged(self, where: str, error: BaseException) -> None:
        self._log.exception("channel %s: hook %s raised", self._channel.name, where)
