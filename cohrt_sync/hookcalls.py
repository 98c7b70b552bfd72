"""Calling hooks: every implementation on its own, a failure logged and reported, never fatal.

pluggy stops a hook call at the first implementation that raises; a client
must not let one broken plugin starve the others of a message, so
:func:`call_hook` and :class:`ChannelHooks` call each implementation
themselves, in pluggy's order. They read the implementations through
pluggy's public API (``HookCaller.get_hookimpls()`` and the ``function``,
``argnames``, ``plugin_name``, ``wrapper`` and ``hookwrapper`` attributes of
:class:`pluggy.HookImpl`, public since pluggy 1.3); ``setup.cfg`` pins the
range, and ``tests/client/test_pluggy_api.py`` checks the installed version.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import pluggy

__all__ = ["ChannelHooks", "HookPlan", "call_hook", "hook_plan", "run_plan"]

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


#: The argument lists of ``on_message`` implementations, the usual two first.
_MESSAGE_ONLY = ("message",)
_CHANNEL_MESSAGE = ("channel", "message")

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
    :param channel: the :class:`~cohrt_sync.Channel` the hooks are called for.
    :param logger: where failures are logged.
    """

    __slots__ = ("_channel", "_log", "_plans", "_pm")

    # The channel is only passed on to the hooks (and named in log lines): Any,
    # so that this module, which the channel's parts use, never imports it.
    def __init__(self, pm: pluggy.PluginManager, channel: Any, logger: logging.Logger) -> None:
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

    def message(self, message: Any) -> None:
        """Call ``on_message`` with ``message``: :meth:`call` for the hook every message runs.

        The same plan and the same isolation as :meth:`call`, written out: it
        runs on the dispatcher thread between a frame's arrival and its
        hooks, woken with cold caches, where every call and every object
        made on the way shows in the latency (docs/benchmarks.md, "An idle
        channel's memory and a message's trip").

        :param message: the :class:`~cohrt_sync.Message` to deliver.
        """
        caller = self._pm.hook.on_message
        impls = caller.get_hookimpls()
        known = self._plans.get("on_message")
        if known is None or known[0] != impls:
            known = (impls, hook_plan("on_message", impls))
            self._plans["on_message"] = known
        plan = known[1]
        channel = self._channel
        if plan is None:  # a wrapper: pluggy's own call, all or nothing
            run_plan(caller, "on_message", plan, {"channel": channel, "message": message},
                     self._failed)
            return
        for function, argnames, where in plan:
            try:
                if argnames == _MESSAGE_ONLY:
                    function(message)
                elif argnames == _CHANNEL_MESSAGE:
                    function(channel, message)
                else:
                    args = {"channel": channel, "message": message}
                    function(*[args[name] for name in argnames])
            except Exception as e:
                self._failed(where, e)

    def implemented(self, name: str) -> bool:
        """True if any plugin implements hook ``name`` (its arguments need not be built).

        :param name: the hook name.
        """
        return bool(getattr(self._pm.hook, name).get_hookimpls())

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
