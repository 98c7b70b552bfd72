"""The remaining public names: exports, deprovision, hook access, cursors, DM helpers."""

from __future__ import annotations

from typing import Any

import pytest

import cohrt_sync

from .conftest import Recorder


def test_public_names_are_exported_with_docstrings() -> None:
    for name in cohrt_sync.__all__:
        obj = getattr(cohrt_sync, name)
        if name != "__version__":
            assert obj.__doc__, name
    assert issubclass(cohrt_sync.CohrtConnectionError, cohrt_sync.CohrtError)
    assert not issubclass(cohrt_sync.CohrtConnectionError, ConnectionError)
    assert not issubclass(cohrt_sync.CohrtTimeoutError, TimeoutError)


def test_deprovision_then_provision(make_server: Any, make_client: Any) -> None:
    srv = make_server()
    client = make_client(srv)
    client.publish("chat:a", {"x": 1})
    assert isinstance(client.deprovision(), dict)
    with pytest.raises(cohrt_sync.NotProvisionedError):
        client.publish("chat:a", {"x": 2})
    client.provision()
    assert client.history("chat:a") == []  # DELETE dropped realtime_messages


def test_hook_access_and_cursor(server: Any, make_client: Any, recorder: Recorder,
                                channel_name: str) -> None:
    client = make_client(server, plugins=[recorder])
    assert client.hook is client.plugin_manager.hook
    client.publish(channel_name, {"before": True})
    ch = client.subscribe(channel_name, user_id="u")
    first = client.history(channel_name)[0].id
    assert ch.last_id == first  # anchored at the newest message before subscribing
    ack = ch.publish({"n": 1})
    recorder.wait_for(lambda: recorder.messages())
    assert ch.last_id == ack.id
    assert client.channels == [ch]
    ch.close()
    assert client.channels == []


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
