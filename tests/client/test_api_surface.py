"""The remaining public names: exports, deprovision, hook access, cursors."""

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

