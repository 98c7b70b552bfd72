"""No thread dies silently: any exception in the reader or dispatcher is a reported drop."""

from __future__ import annotations

import threading
from typing import Any

import cohrt_sync

from ._server import HostileServer, json_response
from .conftest import Recorder


def _reader_alive(ch: cohrt_sync.Channel) -> bool:
    reader = ch._conn.thread
    return reader is not None and reader.is_alive()


def test_a_frame_that_breaks_the_decoder_is_a_reported_drop(
    hostile: HostileServer, make_client: Any, recorder: Recorder, channel_name: str
) -> None:
    client = make_client(plugins=[recorder])
    ch = client.subscribe(channel_name, "alice")
    hostile.send_all("[" * 200_000)
    recorder.wait_for(lambda: recorder.of("error"))
    recorder.wait_for(lambda: recorder.of("reconnected"))
    assert recorder.of("disconnected")
    ch.publish({"n": 1})
    recorder.wait_for(lambda: recorder.messages())
    assert [m.data for m in recorder.messages()] == [{"n": 1}]
    assert ch.connected and _reader_alive(ch)


def test_a_malformed_token_answer_during_a_reconnect_is_retried(
    hostile: HostileServer, make_client: Any, recorder: Recorder, channel_name: str
) -> None:
    client = make_client(plugins=[recorder])
    ch = client.subscribe(channel_name, "alice")
    bad = {"n": 0}

    async def soon(request: Any) -> Any:
        if bad["n"] < 2:
            bad["n"] += 1
            return json_response({"token": "t", "expires_in": "soon"})
        return None

    hostile.on_token = soon
    hostile.drop_all()
    recorder.wait_for(lambda: recorder.of("reconnected"))
    errors = [e[2] for e in recorder.of("error")]
    assert errors and all(isinstance(e, cohrt_sync.CohrtError) for e in errors)
    assert "token" in str(errors[0])
    assert ch.connected and not ch.closed and _reader_alive(ch)


def test_an_internal_error_in_the_dispatcher_is_a_reported_drop(
    hostile: HostileServer, make_client: Any, recorder: Recorder, channel_name: str
) -> None:
    client = make_client(plugins=[recorder])
    ch = client.subscribe(channel_name, "alice")
    ledger = ch._dispatcher._ledger
    real = ledger.deliver_live
    broke = threading.Event()

    def deliver_live(msg: Any) -> None:
        if not broke.is_set():
            broke.set()
            raise KeyError("injected")
        real(msg)

    ledger.deliver_live = deliver_live  # type: ignore[method-assign]
    # Over HTTP: the socket this message arrives on is cut by the drop.
    client.publish(channel_name, {"n": 1})
    recorder.wait_for(lambda: recorder.of("reconnected"))
    errors = [e[2] for e in recorder.of("error")]
    assert errors and isinstance(errors[0], cohrt_sync.CohrtError)
    # The message the dispatcher failed on comes back through catch-up, once.
    recorder.wait_for(lambda: recorder.messages())
    client.publish(channel_name, {"n": 2})
    recorder.wait_for(lambda: len(recorder.messages()) >= 2)
    assert [m.data for m in recorder.messages()] == [{"n": 1}, {"n": 2}]
