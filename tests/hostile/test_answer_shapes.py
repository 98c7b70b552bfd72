"""Answers of the wrong shape raise a ProtocolError naming the endpoint; server text is redacted."""

from __future__ import annotations

from typing import Any, Callable, Dict

import pytest

import cohrt_sync

from ._server import KEY, HostileServer, json_response
from .conftest import Recorder


def _answer(body: Any, status: int = 200) -> Callable[[Any], Any]:
    async def answer(request: Any) -> Any:
        return json_response(body, status)

    return answer


def test_history_with_null_messages_names_the_endpoint(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    hostile.on_history = _answer({"messages": None})
    client = make_client()
    with pytest.raises(cohrt_sync.ProtocolError, match="/edge/realtime/history"):
        client.history(channel_name)


def test_a_token_that_expires_soon_names_the_endpoint(
    hostile: HostileServer, make_client: Any
) -> None:
    hostile.on_token = _answer({"token": "t", "expires_in": "soon"})
    client = make_client()
    with pytest.raises(cohrt_sync.ProtocolError, match="/edge/realtime/token"):
        client.mint_token("alice")


def test_sql_with_null_results_names_the_endpoint(
    hostile: HostileServer, make_client: Any
) -> None:
    hostile.on_sql = _answer({"results": None})
    client = make_client()
    with pytest.raises(cohrt_sync.ProtocolError, match="/edge/database"):
        client.sql("SELECT 1")


@pytest.mark.parametrize(
    "anchor",
    [{"results": [{"last_id": "many"}]}, {"results": [{"last_id": [1]}]}, {"results": [3]}],
    ids=["str", "list", "not-a-row"],
)
def test_a_wrong_shaped_anchor_falls_back_to_history(
    hostile: HostileServer, make_client: Any, channel_name: str, anchor: Dict[str, Any]
) -> None:
    hostile.store(channel_name, {"n": 1})
    hostile.store(channel_name, {"n": 2})
    hostile.on_sql = _answer(anchor)
    client = make_client()
    ch = client.subscribe(channel_name, "alice")
    assert ch.last_id == 2


def test_invalid_json_is_a_protocol_error(hostile: HostileServer, make_client: Any) -> None:
    async def html(request: Any) -> Any:
        from aiohttp import web

        return web.Response(text="<html>oops</html>", content_type="text/html")

    hostile.on_sql = html
    client = make_client()
    with pytest.raises(cohrt_sync.ProtocolError, match="invalid JSON"):
        client.sql("SELECT 1")


def test_an_error_page_echoing_the_url_does_not_leak_the_key(
    hostile: HostileServer, make_client: Any, channel_name: str
) -> None:
    async def no_session(request: Any) -> Any:
        return json_response({"error": {"code": 404, "message": "no"}}, 404)

    async def echo(request: Any) -> Any:
        return json_response(
            {"error": {"code": 400, "message": f"bad request: {request.path_qs}",
                       "status": "INVALID_ARGUMENT"}},
            400,
        )

    hostile.on_session = no_session  # the client falls back to ?key=
    hostile.on_history = echo
    client = make_client()
    with pytest.raises(cohrt_sync.BadRequestError) as info:
        client.history(channel_name)
    err = info.value
    assert "key=" in str(err)  # the echo is kept, the value is not
    for text in (str(err), repr(err), repr(err.args), repr(err.body)):
        assert KEY not in text


def test_an_answer_of_the_wrong_shape_in_catch_up_reaches_on_error(
    hostile: HostileServer, make_client: Any, recorder: Recorder, channel_name: str
) -> None:
    client = make_client(plugins=[recorder])
    client.subscribe(channel_name, "alice")
    hostile.on_history = _answer({"messages": None})
    hostile.store(channel_name, {"n": 1})
    hostile.drop_all()
    recorder.wait_for(lambda: recorder.of("error"))
    errors = [e[2] for e in recorder.of("error")]
    assert isinstance(errors[0], cohrt_sync.ProtocolError)
    hostile.on_history = None
    recorder.wait_for(lambda: recorder.messages())
    assert [m.data for m in recorder.messages()] == [{"n": 1}]
    recorder.wait_for(lambda: recorder.of("reconnected"))
