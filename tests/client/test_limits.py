"""The client under a tier's refusals: budgets, Retry-After, a paused tenant."""

from __future__ import annotations

import json
import time
from typing import Any, List

import pytest
import requests

import cohrt_sync
from cohrt_sync import Retry
from cohrt_sync.errors import error_from_frame, error_from_response

from .conftest import KEY, CountingSession, Recorder, wait_until


def test_mint_over_the_per_minute_cap_raises_at_once(make_server: Any,
                                                     make_client: Any) -> None:
    srv = make_server(tier="ephemeral")
    client = make_client(srv)  # the default policy: 3 retries within 10 s
    for _ in range(5):
        client.mint_token("u")
    started = time.monotonic()
    with pytest.raises(cohrt_sync.RateLimitedError) as info:
        client.mint_token("u")
    # Retry-After (about 60 s) is longer than the budget: no sleeping on it.
    assert time.monotonic() - started < 2.0
    assert info.value.retry_after is not None and info.value.retry_after > 10


def test_publish_on_a_monthly_cap_raises_at_once(make_server: Any, make_client: Any,
                                                 channel_name: str) -> None:
    srv = make_server(tier="free")
    client = make_client(srv, retry=Retry(total=3, budget=5.0))
    client.publish(channel_name, {"n": 0})

    def exhaust_month(core: Any) -> None:
        # 500,000 publishes would take minutes: set the month's count to the cap.
        counters = core.state.by_key(KEY).counters
        counters["month:published messages"] = 500_000

    srv._call(exhaust_month)
    started = time.monotonic()
    with pytest.raises(cohrt_sync.RateLimitedError) as info:
        client.publish(channel_name, {"n": 1})
    assert time.monotonic() - started < 2.0
    assert info.value.retry_after is not None and info.value.retry_after > 3600


def test_retry_after_is_read_whatever_the_header_case() -> None:
    body = b'{"error": {"code": 429, "message": "socket cap reached"}}'
    for headers in ({"Retry-After": "5"}, {"retry-after": "5"}, {"RETRY-AFTER": "5"}):
        err = error_from_response(429, body, headers)
        assert isinstance(err, cohrt_sync.RateLimitedError) and err.retry_after == 5


def _fill_sockets(srv: Any, make_client: Any, count: int, prefix: str) -> List[Any]:
    # Each socket costs a mint; the ephemeral tier mints 5 a minute. A user of
    # its own for each: one user may hold only a fifth of the tenant's cap.
    other = make_client(srv)
    channels = [other.subscribe(f"{prefix}-{i}", user_id=f"filler{i}") for i in range(count)]
    srv.advance_clock(61)
    return channels


def _mints(session: CountingSession) -> int:
    with session.lock:
        return sum(p.startswith("edge/realtime/token") for p in session.paths)


def test_socket_cap_refusal_carries_retry_after(make_server: Any, make_client: Any,
                                                channel_name: str) -> None:
    srv = make_server(tier="ephemeral")
    _fill_sockets(srv, make_client, 5, channel_name)
    client = make_client(srv)
    with pytest.raises(cohrt_sync.RateLimitedError) as info:
        client.subscribe(channel_name, user_id="u")
    assert info.value.retry_after is not None and info.value.retry_after >= 1


def test_reconnect_waits_out_the_socket_caps_retry_after(make_server: Any, make_client: Any,
                                                         recorder: Recorder,
                                                         channel_name: str) -> None:
    srv = make_server(tier="ephemeral")
    session = CountingSession()
    quick = Retry(total=None, backoff_factor=0.3, backoff_max=0.3, jitter=0.0)
    client = make_client(srv, plugins=[recorder], session=session, reconnect_backoff=quick)
    ch = client.subscribe(channel_name, user_id="u")
    fillers = _fill_sockets(srv, make_client, 4, channel_name)
    srv.drop_channel(channel_name)
    wait_until(lambda: srv.socket_count() == 4)
    # Take the dropped socket's place before the channel's reconnect comes back.
    squatter = make_client(srv).subscribe(channel_name + "-squat", user_id="s")
    refused = recorder.wait_for(lambda: [e for e in recorder.of("error")
                                         if isinstance(e[-1], cohrt_sync.RateLimitedError)])
    refused_at = time.monotonic()
    mints_then = _mints(session)
    retry_after = refused[0][-1].retry_after
    assert retry_after is not None and retry_after >= 1
    squatter.close()
    recorder.wait_for(lambda: recorder.of("reconnected"), timeout=retry_after + 10)
    # The next attempt came only after Retry-After, and minted the one token it used.
    assert time.monotonic() - refused_at >= retry_after - 0.5
    assert _mints(session) == mints_then + 1
    assert ch.connected and len(fillers) == 4


def _pause_tenant(srv: Any) -> None:
    # 10 RealtimeKit participant tokens per ephemeral lifetime: the 11th pauses.
    auth = {"Authorization": f"Bearer {KEY}"}
    meeting = requests.post(srv.base_url + "/edge/realtimekit/meetings", json={},
                            headers=auth, timeout=5).json()["data"]["id"]
    path = f"{srv.base_url}/edge/realtimekit/meetings/{meeting}/participants"
    codes = [requests.post(path, json={"preset_name": "group_call_host"}, headers=auth,
                           timeout=5).status_code for _ in range(11)]
    assert codes == [201] * 10 + [403]


def test_paused_tenant_is_one_error_on_every_path(make_server: Any, make_client: Any,
                                                  recorder: Recorder,
                                                  channel_name: str) -> None:
    srv = make_server(tier="ephemeral", rtk_delay_ms=0)
    session = CountingSession()
    client = make_client(srv, plugins=[recorder], session=session)
    ch = client.subscribe(channel_name, user_id="u")
    _pause_tenant(srv)
    with pytest.raises(cohrt_sync.TenantPausedError) as info:
        client.history(channel_name)
    assert isinstance(info.value, cohrt_sync.NotProvisionedError)
    with pytest.raises(cohrt_sync.TenantPausedError):
        client.publish(channel_name, {"n": 1})
    with pytest.raises(cohrt_sync.TenantPausedError):
        ch.publish({"n": 2})
    with pytest.raises(cohrt_sync.TenantPausedError):
        client.subscribe(channel_name + "-2", user_id="v")
    mints_then = _mints(session)
    # The server closed the socket with its pause reason: the channel stops
    # without a single reconnect attempt.
    assert ch.wait(10)
    recorder.wait_for(lambda: recorder.of("closed"))
    errors = [e[-1] for e in recorder.of("error")]
    assert len(errors) == 1 and isinstance(errors[0], cohrt_sync.TenantPausedError)
    assert [e[0] for e in recorder.events][-1] == "closed"
    assert _mints(session) == mints_then
    assert ch.closed and ch not in client.channels


def test_deprovisioned_tenant_stops_reconnecting(make_server: Any, make_client: Any,
                                                 recorder: Recorder,
                                                 channel_name: str) -> None:
    srv = make_server()
    client = make_client(srv, plugins=[recorder])
    ch = client.subscribe(channel_name, user_id="u")
    client.deprovision()
    srv.drop_channel(channel_name)
    assert ch.wait(10)
    recorder.wait_for(lambda: recorder.of("closed"))
    errors = [e[-1] for e in recorder.of("error")]
    assert len(errors) == 1 and isinstance(errors[0], cohrt_sync.NotProvisionedError)


def test_paused_is_recognised_by_status_and_message() -> None:
    def envelope(message: str, status: str) -> bytes:
        return json.dumps({"error": {"code": 403, "message": message, "status": status}}).encode()

    paused = [
        error_from_response(403, envelope("tenant is paused: cap exceeded", "FAILED_PRECONDITION")),
        error_from_response(403, envelope("Tenant Paused", "PERMISSION_DENIED")),
        error_from_response(403, b"account paused"),
        error_from_frame("tenant is paused: an ephemeral hard cap was exceeded"),
    ]
    assert all(isinstance(e, cohrt_sync.TenantPausedError) for e in paused)
    not_paused = [
        error_from_response(403, envelope("realtime is not provisioned", "FAILED_PRECONDITION")),
        error_from_response(429, envelope("paused? no: rate limited", "RESOURCE_EXHAUSTED")),
        error_from_frame('publish requires "data"'),
    ]
    assert not any(isinstance(e, cohrt_sync.TenantPausedError) for e in not_paused)
    assert isinstance(not_paused[0], cohrt_sync.NotProvisionedError)
