"""Token expiry against the server's clock (advance_clock; no sleeping). Own server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._wire import Api, Sock, assert_envelope, assert_refusal_envelope, refusal, uniq
from .conftest import make_server

KEY = "kx_5d6e7f8091a2b3c4"


@pytest.fixture(scope="module")
def clock_server() -> Iterator[Any]:
    srv = make_server(keys=[KEY], session_ttl=60)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture()
def api(clock_server: Any) -> Api:
    return Api(clock_server.base_url, KEY)


def test_expired_ws_token_is_refused_at_open(api: Api, clock_server: Any) -> None:
    tok = api.token("alice", ttl=60)
    clock_server.advance_clock(61)
    status, body, _ = refusal(api.base_url, token=tok, channel=uniq())
    assert status == 401, (status, body)
    assert_refusal_envelope(401, body)


def test_token_opens_until_its_expiry(api: Api, clock_server: Any) -> None:
    tok = api.token("alice", ttl=120)
    clock_server.advance_clock(100)
    with Sock(api.base_url, tok, uniq()) as s:
        assert s.subscribed["action"] == "subscribed"
    clock_server.advance_clock(30)
    status, _, _ = refusal(api.base_url, token=tok, channel=uniq())
    assert status == 401


def test_long_ttl_token_still_opens_late(api: Api, clock_server: Any) -> None:
    tok = api.token("alice", ttl=3600)
    clock_server.advance_clock(3500)
    with Sock(api.base_url, tok, uniq()) as s:
        assert s.subscribed["action"] == "subscribed"


def test_open_socket_outlives_its_token(api: Api, clock_server: Any) -> None:
    ch = uniq()
    tok = api.token("alice", ttl=60)
    with Sock(api.base_url, tok, ch) as s:
        clock_server.advance_clock(7200)
        ack = s.publish({"still": "here"})
        assert isinstance(ack["id"], int)
        assert s.message()["data"] == {"still": "here"}
        # it still receives others' publications too
        api.publish_ok(ch, {"from": "server"})
        assert s.message()["data"] == {"from": "server"}
        # but the same token cannot open a new socket any more
        status, _, _ = refusal(api.base_url, token=tok, channel=ch)
        assert status == 401


def test_edge_session_token_expires(api: Api, clock_server: Any) -> None:
    session = api.session()
    ch = uniq()
    assert api.publish(ch, {"n": 1}, bearer=session).status_code == 200
    clock_server.advance_clock(61)
    assert_envelope(api.publish(ch, {"n": 2}, bearer=session), 401)
    assert_envelope(api.history(ch, bearer=session), 401)
    assert_envelope(api.sql("SELECT 1", bearer=session), 401)
    assert_envelope(api.mint_resp({"user_id": "a"}, bearer=session), 401)
    # a fresh session works again
    assert api.publish(ch, {"n": 3}, bearer=api.session()).status_code == 200
    assert [m["data"] for m in api.history_ok(ch)] == [{"n": 1}, {"n": 3}]
