"""Rate limits of the spec's Ephemeral tier (server run with tier="ephemeral"). Own server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ._wire import Api, Sock, assert_envelope, assert_refusal_envelope, refusal, uniq
from .conftest import make_server

E_SOCK = "ke1_socket_cap_77"
E_MINT = "ke2_mint_rate_88"
E_REQ = "ke3_request_rate_99"
E_RTK = "ke4_rtk_cap_1010"


@pytest.fixture(scope="module")
def eph() -> Iterator[Any]:
    srv = make_server(keys=[E_SOCK, E_MINT, E_REQ, E_RTK], tier="ephemeral")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _retry_after(resp_headers: Any) -> int:
    value = resp_headers.get("Retry-After")
    assert value is not None, resp_headers
    seconds = int(value)
    assert 1 <= seconds <= 60, value
    return seconds


def test_sixth_concurrent_socket_is_refused_429(eph: Any) -> None:
    api = Api(eph.base_url, E_SOCK)
    ch = uniq()
    tokens = [api.token(f"u{i}", ttl=3600) for i in range(5)]
    eph.advance_clock(61)  # a fresh minute for the mint limit
    tokens.append(api.token("u5", ttl=3600))
    socks = [Sock(eph.base_url, tok, ch) for tok in tokens[:5]]
    try:
        status, body, headers = refusal(eph.base_url, token=tokens[5], channel=ch)
        assert status == 429, (status, body)
        assert_refusal_envelope(429, body, "RESOURCE_EXHAUSTED")
        # DESIGN §2: 429 comes with Retry-After (websocket-client lower-cases header names)
        _retry_after({k.title(): v for k, v in headers.items()})
        # the cap is per tenant, not per channel
        status, _, _ = refusal(eph.base_url, token=tokens[5], channel=uniq())
        assert status == 429
        # a closed socket frees its slot (closing is asynchronous: retry briefly)
        socks.pop().close()
        opened = None
        for delay in (0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6):
            try:
                opened = Sock(eph.base_url, tokens[5], ch)
                break
            except Exception:
                time.sleep(delay)
        assert opened is not None, "slot not freed after close"
        socks.append(opened)
    finally:
        for s in socks:
            s.close()


def test_sixth_token_mint_in_a_minute_is_429_with_retry_after(eph: Any) -> None:
    api = Api(eph.base_url, E_MINT)
    for i in range(5):
        r = api.mint_resp({"user_id": f"u{i}"})
        assert r.status_code == 200, (i, r.text)
    r = api.mint_resp({"user_id": "u5"})
    assert_envelope(r, 429, "RESOURCE_EXHAUSTED")
    _retry_after(r.headers)
    # after the window the tenant may mint again (the limit is a rate, not a pause)
    eph.advance_clock(61)
    assert api.mint_resp({"user_id": "u6"}).status_code == 200


# Assumption: "requests: 30 per minute" counts every edge request of the tenant.
def test_thirty_first_request_in_a_minute_is_429(eph: Any) -> None:
    api = Api(eph.base_url, E_REQ)
    eph.advance_clock(61)
    ch = uniq()
    codes = [api.history(ch).status_code for _ in range(30)]
    assert codes == [200] * 30, codes
    r = api.history(ch)
    assert_envelope(r, 429, "RESOURCE_EXHAUSTED")
    _retry_after(r.headers)
    eph.advance_clock(61)
    assert api.history(ch).status_code == 200


def test_eleventh_participant_token_of_an_ephemeral_tenant_is_refused(eph: Any) -> None:
    """Ephemeral: 10 RealtimeKit participant tokens per tenant lifetime."""
    api = Api(eph.base_url, E_RTK)
    eph.advance_clock(61)

    def call(method: str, path: str, **kw: Any) -> Any:
        return api.request(method, "/edge/realtimekit" + path, params={"key": E_RTK}, **kw)

    r = call("POST", "/meetings", json={"title": "cap"})
    assert r.status_code in (200, 201), r.text
    meeting_id = r.json()["data"]["id"]
    for _ in range(25):  # eventual consistency (spec: poll until it resolves)
        if call("GET", f"/meetings/{meeting_id}").status_code == 200:
            break
        time.sleep(0.05)
    body = {"preset_name": "group_call_participant", "name": "p"}
    for i in range(10):
        r = call("POST", f"/meetings/{meeting_id}/participants",
                 json={**body, "custom_participant_id": f"p{i}"})  # fmt: skip
        assert r.status_code in (200, 201), (i, r.text)
    eph.advance_clock(61)  # not a per-minute limit: a new minute does not help
    r = call("POST", f"/meetings/{meeting_id}/participants",
             json={**body, "custom_participant_id": "p10"})  # fmt: skip
    # refused as exhausted (429) or with the tenant paused (403), in the Google envelope
    assert r.status_code in (429, 403), r.text
    assert_envelope(r, r.status_code)
