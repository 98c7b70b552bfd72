"""Each user's share of a tenant's sockets: a cap below the tenant's, and a rate of opening.

A token names a user, and one token opens any number of sockets: 50 sockets
of one token held the free tier's whole cap, and 300 open/close cycles sent
600 join/leave frames to every listener. Refusals are handshake refusals: the
JSON envelope before the upgrade, 429 with ``Retry-After``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, List

import pytest
import websocket

from ._wire import Api, Sock, assert_refusal_envelope, poll, refusal, uniq, ws_url
from .conftest import KEY_A, make_server

FREE = ["ku_free_1", "ku_free_2"]


@pytest.fixture()
def free() -> Iterator[Any]:
    """A free-tier server: 50 sockets, 120 requests a minute; a fifth of each per user."""
    srv = make_server(keys=FREE, tier="free")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def refused_429(base_url: str, token: str, channel: str, setting: str) -> int:
    """Assert a 429 handshake refusal naming ``setting``; its Retry-After."""
    status, body, headers = refusal(base_url, token=token, channel=channel)
    assert status == 429, (status, body)
    assert_refusal_envelope(429, body, "RESOURCE_EXHAUSTED")
    assert setting in body["error"]["message"], body
    return int({k.lower(): v for k, v in headers.items()}["retry-after"])


def admitted(base_url: str, token: str, channel: str) -> Sock:
    """A socket, once the server has counted an earlier close of the same user."""

    def attempt() -> Any:
        try:
            return Sock(base_url, token, channel)
        except websocket.WebSocketBadStatusException as e:
            assert e.status_code == 429
            return None

    return poll(attempt)


def test_one_user_holds_at_most_a_fifth_of_the_free_tiers_sockets(free: Any) -> None:
    api = Api(free.base_url, FREE[0])
    mallory, alice = api.token("mallory", ttl=3600), api.token("alice", ttl=3600)
    ch = uniq()
    socks: List[Sock] = []
    try:
        for _ in range(10):
            socks.append(Sock(free.base_url, mallory, ch))
        assert refused_429(free.base_url, mallory, ch, "max_user_sockets") == 5
        socks.append(Sock(free.base_url, alice, ch))  # another user still gets in
        socks.pop(0).close()
        socks.append(admitted(free.base_url, mallory, ch))  # a freed slot is mallory's again
    finally:
        for s in socks:
            s.close()


def test_a_refused_user_spends_none_of_the_tenants_requests(free: Any) -> None:
    """200 refused handshakes by a user at its cap, and the tenant's other calls go on."""
    api = Api(free.base_url, FREE[1])
    free.advance_clock(61)
    mallory = api.token("mallory", ttl=3600)
    ch = uniq()
    socks = [Sock(free.base_url, mallory, ch) for _ in range(10)]
    try:
        for _ in range(200):
            with pytest.raises(websocket.WebSocketBadStatusException) as refused:
                websocket.create_connection(ws_url(free.base_url, token=mallory, channel=ch))
            assert refused.value.status_code == 429
        # 120 requests a minute on free: the 200 above took none of them.
        assert api.publish(ch, {"after": "storm"}).status_code == 200
        with Sock(free.base_url, api.token("bob"), ch) as bob:
            assert any(u["id"] == "mallory" for u in bob.presence)
    finally:
        for s in socks:
            s.close()


def test_socket_opens_per_user_are_a_rate(free: Any) -> None:
    """24 opens a minute per user on free (a fifth of 120 requests), refilled as time passes."""
    api = Api(free.base_url, FREE[0])
    free.advance_clock(61)
    cycler = api.token("cycler", ttl=3600)
    ch = uniq()
    for _ in range(24):
        Sock(free.base_url, cycler, ch).close()
    wait = refused_429(free.base_url, cycler, ch, "user_socket_opens")
    assert 1 <= wait <= 3  # one open comes back every 2.5 s
    free.advance_clock(wait)
    Sock(free.base_url, cycler, ch).close()


def test_open_close_cycles_send_a_bounded_number_of_presence_frames(base_url: str) -> None:
    """300 open/close cycles of one user: at most 120 (and what refills) reach a listener."""
    api = Api(base_url, KEY_A)
    ch = uniq()
    cycler = api.token(uniq("cycler"), ttl=3600)
    started = time.monotonic()
    opened = 0
    with Sock(base_url, api.token(uniq("listener")), ch) as listener:
        for _ in range(300):
            try:
                ws = websocket.create_connection(ws_url(base_url, token=cycler, channel=ch))
            except websocket.WebSocketBadStatusException as e:
                assert e.status_code == 429
                continue
            opened += 1
            ws.recv()  # connected: the server has counted it
            ws.close()
        took = time.monotonic() - started
        # One last cycle's leave, then nothing more is coming.
        listener.send({"action": "publish", "data": "end", "persist": False})
        listener.message(lambda f: f["data"] == "end")
        frames = [f for f in listener.backlog if f.get("action") in ("join", "leave")]
    allowed = 120 + 2 * took + 1  # the burst, then 2 a second
    assert opened <= allowed, (opened, took)
    assert len(frames) <= 2 * allowed, (len(frames), took)


def test_the_per_user_settings_are_honoured() -> None:
    with make_server(keys=["ku_set"], max_user_sockets=3, user_socket_opens=4) as srv:
        api = Api(srv.base_url, "ku_set")
        tok, ch = api.token("u", ttl=3600), uniq()
        socks = [Sock(srv.base_url, tok, ch) for _ in range(3)]
        try:
            refused_429(srv.base_url, tok, ch, "3 concurrent sockets per user")
            socks.pop().close()
            socks.append(admitted(srv.base_url, tok, ch))  # the 4th open of the minute
            socks.pop().close()

            def by_rate() -> bool:
                # Refused by the cap until the server has counted the close.
                status, body, _ = refusal(srv.base_url, token=tok, channel=ch)
                assert status == 429, body
                return "4 socket opens per minute per user" in body["error"]["message"]

            poll(by_rate)
        finally:
            for s in socks:
                s.close()
