"""Direct messages: DM channel names, the request/accept helpers, and the flow end to end."""

from __future__ import annotations

import threading
from typing import Any, List

import pytest

import cohrt_sync

from .conftest import Recorder


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [(17, 3, "dm:3_17"), (3, 17, "dm:3_17"), ("17", 3, "dm:3_17"), (2, 10, "dm:2_10"),
     ("bob", "alice", "dm:alice_bob"), (42, "alice", "dm:42_alice"), (1, 42, "dm:1_42")],
)
def test_dm_channel(a: Any, b: Any, expected: str) -> None:
    assert cohrt_sync.dm_channel(a, b) == expected
    assert cohrt_sync.dm_channel(b, a) == expected


@pytest.mark.parametrize("odd", ["1" * 5000, "\u00b2", "1" * 300])
def test_an_id_no_int_holds_sorts_as_a_name_instead_of_raising(odd: str) -> None:
    # A dm_request's "from" is the sender's to choose: 5000 digits, or "²"
    # (a digit int() refuses), made dm_channel raise a bare ValueError.
    assert cohrt_sync.dm_channel(odd, 3) == cohrt_sync.dm_channel(3, odd) == f"dm:3_{odd}"


def test_dm_channel_rejects_bad_ids() -> None:
    with pytest.raises(TypeError):
        cohrt_sync.dm_channel(True, 3)
    with pytest.raises(ValueError):
        cohrt_sync.dm_channel("", 3)


def test_dm_flow_end_to_end(server: Any, make_client: Any) -> None:
    """Alice asks Bob for a DM; Bob's hook opens the DM channel; both talk."""
    bob_dm: List[Any] = []
    opened = threading.Event()
    bob_recorder = Recorder()

    class BobBot:
        @cohrt_sync.hookimpl
        def on_dm_request(self, channel: Any, message: Any) -> None:
            assert channel.name == "user:42" and message.event == "dm_request"
            bob_dm.append(cohrt_sync.accept_dm_request(channel, message))
            opened.set()

    bob = make_client(server, plugins=[BobBot(), bob_recorder])
    bob.subscribe(cohrt_sync.user_channel(42), user_id=42, name="Bob")
    alice = make_client(server)
    alice_recorder = Recorder()
    alice.register(alice_recorder)
    alice_dm = alice.subscribe(cohrt_sync.dm_channel(1, 42), user_id=1, name="Alice")

    ack = alice.send_dm_request(1, 42, note="hi")
    assert ack.channel == "user:42"
    assert opened.wait(10)
    request = bob_recorder.wait_for(lambda: bob_recorder.of("dm_request"))[0][2]
    assert request.data == {"from": "1", "dm_channel": "dm:1_42", "note": "hi"}
    assert [m.event for m in bob_recorder.messages("user:42")] == ["dm_request"]
    dm = bob_dm[0]
    assert dm.name == "dm:1_42" and dm.user_id == "42" and dm.user_name == "Bob"
    alice_recorder.wait_for(lambda: alice_recorder.of("join"))
    alice_dm.publish({"text": "hello bob"})
    dm.publish({"text": "hello alice"})
    bob_recorder.wait_for(lambda: len(bob_recorder.messages("dm:1_42")) == 2)
    history = alice.history("dm:1_42")
    assert [m.data["text"] for m in history] == ["hello bob", "hello alice"]


def test_module_level_dm_helpers(server: Any, make_client: Any, recorder: Recorder) -> None:
    client = make_client(server, plugins=[recorder])
    inbox = client.subscribe(cohrt_sync.user_channel("bob"), user_id="bob")
    ack = cohrt_sync.send_dm_request(client, "alice", "bob")
    assert ack.event == "dm_request"
    req = recorder.wait_for(lambda: recorder.of("dm_request"))[0][2]
    bad = cohrt_sync.Message(channel="user:bob", event="dm_request", action="dm_request",
                             data={"dm_channel": "chat:not-a-dm"})
    with pytest.raises(cohrt_sync.BadRequestError):
        cohrt_sync.accept_dm_request(inbox, bad)
    dm = cohrt_sync.accept_dm_request(inbox, req, catch_up=False)
    assert dm.name == "dm:alice_bob" and dm.user_id == "bob"


@pytest.mark.parametrize(
    "data",
    [
        {"from": "alice", "dm_channel": "dm:mallory_trap"},
        {"from": "alice", "dm_channel": "dm:alice_mallory"},
        {"from": "mallory", "dm_channel": "dm:alice_bob"},
        {"dm_channel": "dm:bob_bob"},
    ],
)
def test_a_dm_request_naming_another_channel_is_refused(
    server: Any, make_client: Any, recorder: Recorder, data: Any
) -> None:
    # Mallory holds a token too: she can publish any dm_request on user:bob.
    bob = make_client(server, plugins=[recorder])
    inbox = bob.subscribe(cohrt_sync.user_channel("bob"), user_id="bob")
    make_client(server).publish("user:bob", data, event="dm_request")
    req = recorder.wait_for(lambda: recorder.of("dm_request"))[0][2]
    with pytest.raises(cohrt_sync.BadRequestError, match="dm_request"):
        cohrt_sync.accept_dm_request(inbox, req)
    assert [ch.name for ch in bob.channels] == ["user:bob"]


def test_a_dm_request_can_be_checked_against_the_apps_own_name(
    server: Any, make_client: Any, recorder: Recorder
) -> None:
    secret = "0123456789abcdef0123"
    private = cohrt_sync.private_channel(secret, "dm", "alice", "bob")
    bob = make_client(server, plugins=[recorder])
    inbox = bob.subscribe(cohrt_sync.user_channel("bob"), user_id="bob")
    bob.publish("user:bob", {"from": "alice", "dm_channel": private}, event="dm_request")
    req = recorder.wait_for(lambda: recorder.of("dm_request"))[0][2]
    with pytest.raises(cohrt_sync.BadRequestError):
        cohrt_sync.accept_dm_request(inbox, req)  # not dm:alice_bob
    dm = cohrt_sync.accept_dm_request(inbox, req, expected_channel=private, catch_up=False)
    assert dm.name == private
    trusted = cohrt_sync.accept_dm_request(inbox, req, trust_named_channel=True)
    assert trusted.name == private
