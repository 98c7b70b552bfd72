"""ChannelHooks, the one way hooks are called for a channel: no server, no threads."""

from __future__ import annotations

import logging
from typing import Any, List, Tuple

import pytest

import cohrt_sync
from cohrt_sync import hookcalls, plugins
from cohrt_sync.models import Message

log = logging.getLogger("test.channel_hooks")


class FakeChannel:
    name = "room"
    hooks: Any = None


class Spy:
    def __init__(self) -> None:
        self.calls: List[Tuple[str, Any]] = []

    @cohrt_sync.hookimpl
    def on_dm_request(self, channel: Any, message: Message) -> None:
        self.calls.append(("dm_request", message.data))

    @cohrt_sync.hookimpl
    def on_error(self, channel: Any, error: BaseException) -> None:
        self.calls.append(("error", str(error)))

    @cohrt_sync.hookimpl
    def on_connected(self, channel: Any) -> None:
        self.calls.append(("connected", channel))


class Broken:
    @cohrt_sync.hookimpl
    def on_connected(self, channel: Any) -> None:
        raise RuntimeError("plugin bug")

    @cohrt_sync.hookimpl
    def on_error(self, channel: Any, error: BaseException) -> None:
        raise RuntimeError("error hook bug")


def make_hooks(*extra: object) -> Tuple[hookcalls.ChannelHooks, FakeChannel]:
    pm = plugins.make_plugin_manager(extra)
    channel = FakeChannel()
    return hookcalls.ChannelHooks(pm, channel, log), channel


def test_call_fills_in_the_channel() -> None:
    spy = Spy()
    hooks, channel = make_hooks(spy)
    hooks.call("on_connected")
    assert spy.calls == [("connected", channel)]


def test_a_failing_hook_is_logged_and_reported_to_on_error_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spy = Spy()
    hooks, channel = make_hooks(spy, Broken())
    caplog.set_level(logging.ERROR, logger=log.name)
    hooks.call("on_connected")
    # The other implementation still ran; Broken's on_error failing is only logged.
    assert ("connected", channel) in spy.calls
    assert ("error", "plugin bug") in spy.calls
    raised = [r.getMessage() for r in caplog.records]
    assert any("on_connected raised" in m for m in raised)
    assert any("on_error raised" in m for m in raised)
    assert len(raised) == 2


def test_the_dm_router_fires_on_dm_request_through_channel_hooks() -> None:
    spy = Spy()
    hooks, channel = make_hooks(spy)
    channel.hooks = hooks
    request = Message("user:42", "dm_request", "dm_request", {"from": "1"})
    hooks.call("on_message", message=request)
    hooks.call("on_message", message=Message("user:42", "message", "message", {}))
    assert spy.calls == [("dm_request", {"from": "1"})]


def test_plugins_registered_or_unregistered_between_calls_are_seen_by_the_next_call() -> None:
    hooks, channel = make_hooks()
    first, second = Spy(), Spy()
    hooks.call("on_connected")  # no implementation yet: remembered as such
    pm = hooks._pm
    pm.register(first)
    hooks.call("on_connected")
    pm.register(second)
    hooks.call("on_connected")
    pm.unregister(first)
    hooks.call("on_connected")
    assert first.calls == [("connected", channel)] * 2
    assert second.calls == [("connected", channel)] * 2


class Wrapper:
    def __init__(self) -> None:
        self.wrapped = 0

    @cohrt_sync.hookimpl(wrapper=True)
    def on_connected(self, channel: Any) -> Any:
        self.wrapped += 1
        return (yield)


def test_a_wrapper_registered_later_wraps_the_next_call() -> None:
    spy, wrapper = Spy(), Wrapper()
    hooks, channel = make_hooks(spy)
    hooks.call("on_connected")
    hooks._pm.register(wrapper)
    hooks.call("on_connected")
    assert wrapper.wrapped == 1
    assert spy.calls == [("connected", channel)] * 2


def _order_plugins(calls: List[Tuple[str, Any]]) -> List[object]:
    """on_message implementations taking its arguments every way pluggy allows, and a broken one."""
    class MessageOnly:
        @cohrt_sync.hookimpl
        def on_message(self, message: Message) -> None:
            calls.append(("message", message.data))

    class ChannelFirst:
        @cohrt_sync.hookimpl
        def on_message(self, channel: Any, message: Message) -> None:
            calls.append(("channel, message", (channel.name, message.data)))

    class MessageFirst:
        @cohrt_sync.hookimpl
        def on_message(self, message: Message, channel: Any) -> None:
            calls.append(("message, channel", (message.data, channel.name)))

    class Neither:
        @cohrt_sync.hookimpl
        def on_message(self) -> None:
            calls.append(("neither", None))

    class Raises:
        @cohrt_sync.hookimpl
        def on_message(self, message: Message) -> None:
            raise RuntimeError("on_message bug")

    return [MessageOnly(), ChannelFirst(), Raises(), MessageFirst(), Neither()]


def test_message_passes_each_implementation_its_arguments_and_isolates_a_failure() -> None:
    calls: List[Tuple[str, Any]] = []
    spy = Spy()
    hooks, _ = make_hooks(spy, *_order_plugins(calls))
    hooks.message(Message("room", "message", "message", {"n": 1}))
    # pluggy's order: the last registered first; the failing one stops nobody.
    assert calls == [
        ("neither", None),
        ("message, channel", ({"n": 1}, "room")),
        ("channel, message", ("room", {"n": 1})),
        ("message", {"n": 1}),
    ]
    assert spy.calls == [("error", "on_message bug")]


def test_message_sees_plugins_registered_or_unregistered_since_the_last_message() -> None:
    calls: List[Tuple[str, Any]] = []
    only, channel_first, *_ = _order_plugins(calls)
    hooks, _ = make_hooks()
    hooks.message(Message("room", "message", "message", 1))
    hooks._pm.register(only)
    hooks.message(Message("room", "message", "message", 2))
    hooks._pm.register(channel_first)
    hooks._pm.unregister(only)
    hooks.message(Message("room", "message", "message", 3))
    assert calls == [("message", 2), ("channel, message", ("room", 3))]


class MessageWrapper:
    def __init__(self) -> None:
        self.wrapped: List[Any] = []

    @cohrt_sync.hookimpl(wrapper=True)
    def on_message(self, message: Message) -> Any:
        self.wrapped.append(message.data)
        return (yield)


def test_a_wrapper_of_on_message_wraps_the_next_message() -> None:
    calls: List[Tuple[str, Any]] = []
    hooks, _ = make_hooks(_order_plugins(calls)[0])
    wrapper = MessageWrapper()
    hooks.message(Message("room", "message", "message", 1))
    hooks._pm.register(wrapper)
    hooks.message(Message("room", "message", "message", 2))
    assert wrapper.wrapped == [2]
    assert calls == [("message", 1), ("message", 2)]
