"""HTTP methods against a real local server: tokens, publish, history, SQL, errors."""

from __future__ import annotations

import threading
import time
from typing import Any, List

import pytest

import cohrt_sync
from cohrt_sync.errors import error_from_response
from cohrt_sync.retry import Retry
from cohrt_sync.server import LocalServer

from .conftest import KEY, CountingSession


def test_mint_token(server: Any, make_client: Any) -> None:
    client = make_client(server)
    tok = client.mint_token(user_id=30, name="Alice", ttl=300)
    assert isinstance(tok, cohrt_sync.Token)
    assert tok.token and tok.expires_in == 300
    assert tok.user_id == "30" and tok.name == "Alice"
    assert tok.token not in repr(tok)


def test_publish_history_and_iter_history(server: Any, make_client: Any, channel_name: str) -> None:
    client = make_client(server)
    ack = client.publish(channel_name, {"text": "hi"}, event="message", persist=True)
    assert isinstance(ack, cohrt_sync.PublishAck)
    assert ack.channel == channel_name and ack.event == "message"
    assert isinstance(ack.created_at_ms, int) and isinstance(ack.id, int)
    client.publish(channel_name, {"n": 1}, event="typing", persist=False)
    for i in range(104):
        client.publish(channel_name, {"i": i})
    page = client.history(channel_name, after=0, limit=50)
    assert len(page) == 50 and all(isinstance(m, cohrt_sync.Message) for m in page)
    first = page[0]
    assert (first.channel, first.event, first.action, first.data) == (
        channel_name, "message", "message", {"text": "hi"},
    )
    assert first.id == ack.id and first.created_at_ms == ack.created_at_ms
    assert client.history(channel_name, after=page[-1].id, limit=1)[0].id > page[-1].id
    everything = list(client.iter_history(channel_name, after=0))
    assert len(everything) == 105  # the typing event was not persisted
    ids = [m.id for m in everything]
    assert ids == sorted(ids) and len(set(ids)) == 105
    assert [m.data for m in everything[1:]] == [{"i": i} for i in range(104)]
    assert list(client.iter_history(channel_name, after=everything[-1].id)) == []


@pytest.mark.parametrize(("stored", "reads"), [(0, 1), (3, 1), (100, 2), (205, 3)])
def test_iter_history_ends_at_a_short_page(
    server: Any, channel_name: str, stored: int, reads: int
) -> None:
    # Each read counts against the tier's caps: no read for an empty last page.
    with cohrt_sync.Client(key=KEY, base_url=server.base_url) as publisher:
        for i in range(stored):
            publisher.publish(channel_name, {"i": i})
    session = CountingSession()
    with cohrt_sync.Client(key=KEY, base_url=server.base_url, session=session) as client:
        assert len(list(client.iter_history(channel_name, page_size=100))) == stored
    assert len([p for p in session.paths if "realtime/history" in p]) == reads


def test_a_query_past_the_time_limit_is_a_bad_request_not_an_auth_error(
    make_client: Any,
) -> None:
    with LocalServer(keys=[KEY], provision=True, sql_time_limit=0.3) as srv:
        client = make_client(srv)
        runaway = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
        )
        with pytest.raises(cohrt_sync.BadRequestError, match="time limit") as info:
            client.sql(runaway)
        assert not isinstance(info.value, cohrt_sync.AuthError)


def test_sql_returns_rows(server: Any, make_client: Any, channel_name: str) -> None:
    client = make_client(server)
    client.publish(channel_name, {"a": 1})
    client.publish(channel_name, {"a": 2})
    rows = client.sql(
        "SELECT count(*) AS n FROM realtime_messages WHERE channel = ?", params=[channel_name]
    )
    assert rows == [{"n": 2}]
    with pytest.raises(cohrt_sync.CohrtError):
        client.sql("SELECT * FROM no_such_table", params=[])


def test_idempotency_key_publishes_once(server: Any, make_client: Any, channel_name: str) -> None:
    client = make_client(server)
    a = client.publish(channel_name, {"x": 1}, idempotency_key="order-42")
    b = client.publish(channel_name, {"x": 1}, idempotency_key="order-42")
    assert a.id == b.id and a.created_at_ms == b.created_at_ms
    assert len(client.history(channel_name)) == 1


def test_the_client_knows_the_local_server_deduplicates_before_its_first_publish(
    server: Any, make_client: Any, channel_name: str
) -> None:
    # The edge session mint that precedes the first publish already says so,
    # so even the first keyed publish may be retried after a timeout.
    client = make_client(server)
    assert not client._http.dedupes_publish
    client._http.bearer()
    assert client._http.dedupes_publish


def test_edge_bearer_is_minted_once_across_threads(server: Any, make_client: Any,
                                                   channel_name: str) -> None:
    session = CountingSession()
    client = make_client(server, session=session)
    errors: List[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                client.history(channel_name)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors
    assert sum(p.startswith("edge/session") for p in session.paths) == 1
    assert sum("key=" in p for p in session.paths) == 1  # only the session mint


def test_bearer_refreshed_once_on_401(make_server: Any, make_client: Any) -> None:
    srv = make_server(session_ttl=60)
    session = CountingSession()
    client = make_client(srv, session=session)
    client.history("chat:a")
    srv.advance_clock(120)  # our cached bearer is now expired server-side
    client.history("chat:a")
    assert sum(p.startswith("edge/session") for p in session.paths) == 2


def test_falls_back_to_key_when_session_endpoint_missing(server: Any, make_client: Any,
                                                         channel_name: str) -> None:
    session = CountingSession(rewrite=lambda u: u.replace("/edge/session", "/edge/no-session"))
    client = make_client(server, session=session)
    client.publish(channel_name, {"a": 1})
    assert len(client.history(channel_name)) == 1
    assert session.paths[0].startswith("edge/no-session")
    assert all("key=" in p for p in session.paths[1:])
    assert sum(p.startswith("edge/no-session") for p in session.paths) == 1


def test_error_mapping_from_server(make_server: Any, make_client: Any) -> None:
    srv = make_server(tier="ephemeral")
    bad = make_client(srv, key="k_wrong")
    with pytest.raises(cohrt_sync.AuthError) as info:
        bad.history("chat:a")
    assert info.value.status_code == 401
    srv.add_key("k_unprovisioned")
    with pytest.raises(cohrt_sync.NotProvisionedError):
        make_client(srv, key="k_unprovisioned").history("chat:a")
    client = make_client(srv, retry=Retry(total=0))
    with pytest.raises(cohrt_sync.RateLimitedError) as limited:
        for _ in range(10):
            client.mint_token("u1")
    assert limited.value.retry_after is not None and limited.value.retry_after > 0


def test_error_envelope_and_non_json_bodies() -> None:
    env = b'{"error": {"code": 400, "message": "bad channel", "status": "INVALID_ARGUMENT"}}'
    err = error_from_response(400, env)
    assert isinstance(err, cohrt_sync.BadRequestError) and err.status == "INVALID_ARGUMENT"
    assert "bad channel" in str(err)
    err = error_from_response(502, b"<html>Bad gateway</html>")
    assert isinstance(err, cohrt_sync.ServerError) and "Bad gateway" in str(err)
    err = error_from_response(429, b"", {"Retry-After": "3"})
    assert isinstance(err, cohrt_sync.RateLimitedError) and err.retry_after == 3.0
    assert isinstance(error_from_response(404, b"{}"), cohrt_sync.NotFoundError)
    assert isinstance(error_from_response(403, b'{"error": {"code": 403, "message": "realtime '
                                               b'is not provisioned", "status": '
                                               b'"FAILED_PRECONDITION"}}'),
                      cohrt_sync.NotProvisionedError)
    assert isinstance(error_from_response(413, b"too big"), cohrt_sync.BadRequestError)


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (lambda c: c.mint_token(True), TypeError),
        (lambda c: c.mint_token(""), ValueError),
        (lambda c: c.mint_token("u", ttl=59), ValueError),
        (lambda c: c.mint_token("u", ttl=3601), ValueError),
        (lambda c: c.mint_token("u", ttl=300.0), TypeError),
        (lambda c: c.history("chat:a", limit=0), ValueError),
        (lambda c: c.history("chat:a", limit=101), ValueError),
        (lambda c: c.history("chat:a", after=-1), ValueError),
        (lambda c: c.history("", limit=1), ValueError),
        (lambda c: c.publish("x" * 257, {}), ValueError),
        (lambda c: c.publish("chat:a", {"s": {1, 2}}), ValueError),
        (lambda c: c.publish("chat:a", float("nan")), ValueError),
        (lambda c: c.publish("chat:a", None), ValueError),
        (lambda c: c.publish("chat:a", {}, event=""), ValueError),
        (lambda c: c.subscribe("chat:a", user_id=None), TypeError),
        (lambda c: c.subscribe("chat:a", user_id="u", ttl=10), ValueError),
        (lambda c: c.subscribe("chat:a", user_id="u", name=5), TypeError),
        (lambda c: c.sql(""), ValueError),
        (lambda c: c.sql("SELECT ?", params="abc"), TypeError),
        (lambda c: c.sql("SELECT 1", params={"a": 1}), TypeError),
        # A lone surrogate has no UTF-8 form: refused here, not as a
        # UnicodeEncodeError from the transport.
        (lambda c: c.publish("chat:a", {"t": "\ud800"}), ValueError),
        (lambda c: c.publish("chat:a", {"\udfff": 1}), ValueError),
        (lambda c: c.publish("chat:a", {}, event="e\ud800"), ValueError),
        (lambda c: c.publish("chat:\ud800", {}), ValueError),
        (lambda c: c.history("chat:\ud800"), ValueError),
        (lambda c: c.mint_token("\ud800"), ValueError),
        (lambda c: c.mint_token("u", name="\ud800"), ValueError),
        (lambda c: c.sql("SELECT '\ud800'"), ValueError),
        (lambda c: c.sql("SELECT ?", params=["\ud800"]), ValueError),
        (lambda c: c.subscribe("chat:\ud800", user_id="u"), ValueError),
        (lambda c: c.subscribe("chat:a", user_id="u", name="\ud800"), ValueError),
        # An Idempotency-Key is a header value: no CR/LF, nothing outside ASCII.
        (lambda c: c.publish("chat:a", {}, idempotency_key="a\r\nX-Evil: 1"), ValueError),
        (lambda c: c.publish("chat:a", {}, idempotency_key="k\ud800"), ValueError),
        (lambda c: c.publish("chat:a", {}, idempotency_key="é"), ValueError),
        (lambda c: c.publish("chat:a", {}, idempotency_key=" k"), ValueError),
        (lambda c: c.publish("chat:a", {}, idempotency_key="k" * 257), ValueError),
        (lambda c: c.publish("chat:a", {}, idempotency_key=""), ValueError),
    ],
)
def test_arguments_checked_before_any_request(call: Any, exc: type) -> None:
    session = CountingSession()
    client = cohrt_sync.Client(key=KEY, base_url="http://127.0.0.1:9", session=session)
    with pytest.raises(cohrt_sync.BadRequestError) as info:
        call(client)
    assert isinstance(info.value, exc)
    assert session.paths == []
    client.close()


def test_missing_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COHESIVITY_KEY", raising=False)
    with pytest.raises(cohrt_sync.BadRequestError):
        cohrt_sync.Client(base_url="http://127.0.0.1:9")


def test_env_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COHESIVITY_KEY", "k_env")
    monkeypatch.delenv("COHESIVITY_BASE_URL", raising=False)
    with cohrt_sync.Client() as client:
        assert client.base_url == "https://cohesivity.ai" and client.key == "k_env"
    monkeypatch.setenv("COHESIVITY_BASE_URL", "http://localhost:1/")
    with cohrt_sync.Client() as client:
        assert client.base_url == "http://localhost:1"


def test_publish_not_retried_when_it_may_have_been_applied(server: Any, make_client: Any) -> None:
    # Connection refused provably never reached a server: retried until exhausted.
    session = CountingSession()
    client = make_client(server, base_url="http://127.0.0.1:9", session=session,
                         retry=Retry(total=2, backoff_factor=0.001))
    with pytest.raises(cohrt_sync.CohrtConnectionError):
        client.publish("chat:a", {"a": 1})
    # 3 attempts at the session mint (retried, idempotent), then the call gives up.
    assert len(session.paths) == 3


def test_provision_via_application_key(make_server: Any, make_client: Any) -> None:
    srv = make_server()
    srv.add_key("k_new")
    client = make_client(srv, key="k_new")
    with pytest.raises(cohrt_sync.NotProvisionedError):
        client.history("chat:a")
    body = client.provision(write_region="us")
    assert isinstance(body, dict)
    assert client.history("chat:a") == []


def test_bearer_refreshed_before_expiry(server: Any, make_client: Any) -> None:
    session = CountingSession()
    client = make_client(server, session=session)
    client.history("chat:a")
    transport = client._http
    # The bearer is due for refresh well before the server's expiry (60 s here).
    assert 0 < transport._bearer_refresh_at - time.monotonic() < 60
    transport._bearer_refresh_at = time.monotonic() - 1  # as if that time had passed
    client.history("chat:a")
    assert sum(p.startswith("edge/session") for p in session.paths) == 2
    assert not any(p.startswith("edge/realtime/history") and "key=" in p for p in session.paths)

