"""Numbers no id or timestamp can be (``1e400``, NaN, ``10**400``, a float id) are
malformed input: the frame is dropped and reported, the socket stays up."""

from __future__ import annotations

import json
from typing import Any

import cohrt_sync

from ._server import HostileServer, json_response
from .conftest import Recorder

#: Live messages whose numbers no int (or no timestamp) holds; as raw text,
#: since json.dumps cannot write 1e400 and Python's decoder reads it as inf.
BAD_FRAMES = [
    '"created_at_ms": 1e400',
    '"created_at_ms": NaN',
    '"created_at_ms": 1' + "0" * 400,
    '"id": 1e400',
    '"id": 9.5',
    '"id": 1' + "0" * 30,
]


def _frame(channel: str, n: int, numbers: str) -> str:
    return (
        f'{{"action": "message", "event": "message", "channel": {json.dumps(channel)},'
        f' "data": {{"bad": {n}}}, {numbers}}}'
    )


def test_a_live_frame_with_a_number_out_of_range_is_dropped_and_the_socket_lives(
    hostile: HostileServer, make_client: Any, recorder: Recorder, channel_name: str
) -> None:
    client = make_client(plugins=[recorder])
    ch = client.subscribe(channel_name, "alice")
    ch.publish({"n": 1})
    for n, numbers in enumerate(BAD_FRAMES):
        hostile.send_all(_frame(channel_name, n, numbers))
    ch.publish({"n": 2})
    ch.publish({"n": 3})
    recorder.wait_for(lambda: len(recorder.messages()) >= 3)
    assert [m.data for m in recorder.messages()] == [{"n": 1}, {"n": 2}, {"n": 3}]
    errors = [e[2] for e in recorder.of("error")]
    assert len(errors) == len(BAD_FRAMES)
    assert all(isinstance(e, cohrt_sync.ProtocolError) for e in errors)
    assert "created_at_ms is inf" in str(errors[0])
    assert recorder.of("disconnected") == [] and ch.reconnects == 0 and ch.connected


def test_an_ack_with_a_number_out_of_range_still_acknowledges_the_publish(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    async def odd_ack(ws: Any, frame: Any) -> bool:
        await hostile._commit(channel_name, frame.get("event", "message"), frame.get("data"))
        await ws.send_str(
            '{"action": "published", "event": "published", "channel": '
            + json.dumps(channel_name) + ', "created_at_ms": 1e400, "id": 1e400}'
        )
        return True

    hostile.on_publish = odd_ack
    client = make_client()
    ch = client.subscribe(channel_name, "alice")
    ack = ch.publish({"n": 1})
    assert (ack.event, ack.created_at_ms, ack.id) == ("message", None, None)


def test_an_edge_bearer_whose_lifetime_no_float_holds_is_used_for_the_spec_s_60_s(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    async def huge(request: Any) -> Any:
        return json_response({"token": "bearer-" + hostile.key[-4:], "expires_in": 10**400})

    hostile.on_session = huge
    client = make_client()
    hostile.store(channel_name, {"n": 1})
    assert [m.data for m in client.history(channel_name)] == [{"n": 1}]
