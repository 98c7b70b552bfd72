"""Edge sessions, token mints, and who may open a socket (spec: Connection Token)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
import requests

from ._wire import (
    NO_STORE,
    Api,
    Sock,
    assert_envelope,
    assert_refusal_envelope,
    b64,
    jwt_parts,
    refusal,
    uniq,
)
from .conftest import KEY_A


# --- POST /edge/session -------------------------------------------------------------------------
def test_session_mint_shape_and_cache_control(api_a: Api) -> None:
    r = api_a.session_resp()
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"token", "token_type", "expires_in"}, body
    assert isinstance(body["token"], str) and body["token"]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 60
    assert r.headers.get("Cache-Control") == NO_STORE


@pytest.mark.parametrize("key", ["nope", "", KEY_A + "x", KEY_A.upper()])
def test_session_unknown_key_is_401(base_url: str, key: str) -> None:
    r = requests.post(f"{base_url}/edge/session", params={"key": key}, timeout=5)
    assert_envelope(r, 401)


def test_session_without_key_is_401(base_url: str) -> None:
    assert_envelope(requests.post(f"{base_url}/edge/session", timeout=5), 401)


def test_session_token_is_a_bearer_for_every_edge_call(api_a: Api) -> None:
    session = api_a.session()
    ch = uniq()
    r = api_a.mint_resp({"user_id": "alice"}, bearer=session)
    assert r.status_code == 200, r.text
    assert r.headers.get("Cache-Control") == NO_STORE
    ack = api_a.publish(ch, {"n": 1}, bearer=session)
    assert ack.status_code == 200, ack.text
    hist = api_a.history(ch, bearer=session)
    assert hist.status_code == 200, hist.text
    assert [m["data"] for m in hist.json()["messages"]] == [{"n": 1}]
    sql = api_a.sql(
        "SELECT count(*) AS n FROM realtime_messages WHERE channel = ?", [ch], bearer=session
    )
    assert sql.status_code == 200, sql.text
    assert sql.json()["results"] == [{"n": 1}]


@pytest.mark.parametrize("bearer", ["garbage", "a.b.c", ""])
def test_bad_bearer_is_401(api_a: Api, bearer: str) -> None:
    ch = uniq()
    headers = {"Authorization": f"Bearer {bearer}"}
    for method, path, kw in [
        ("POST", "/edge/realtime/token", {"json": {"user_id": "a"}}),
        ("POST", "/edge/realtime", {"json": {"channel": ch, "data": {}}}),
        ("GET", "/edge/realtime/history", {"params": {"channel": ch}}),
        ("POST", "/edge/database", {"json": {"query": "SELECT 1"}}),
    ]:
        assert_envelope(api_a.request(method, path, headers=headers, **kw), 401)


def test_edge_calls_without_any_credential_are_401(api_a: Api) -> None:
    ch = uniq()
    for method, path, kw in [
        ("POST", "/edge/realtime/token", {"json": {"user_id": "a"}}),
        ("POST", "/edge/realtime", {"json": {"channel": ch, "data": {}}}),
        ("GET", "/edge/realtime/history", {"params": {"channel": ch}}),
        ("POST", "/edge/database", {"json": {"query": "SELECT 1"}}),
    ]:
        assert_envelope(api_a.request(method, path, **kw), 401)


def test_unknown_key_is_401_on_every_edge_call(base_url: str) -> None:
    bad = Api(base_url, "k_unknown_123")
    ch = uniq()
    assert_envelope(bad.mint_resp({"user_id": "a"}), 401)
    assert_envelope(bad.publish(ch, {}), 401)
    assert_envelope(bad.history(ch), 401)
    assert_envelope(bad.sql("SELECT 1"), 401)


# --- POST /edge/realtime/token ------------------------------------------------------------------
def test_mint_with_key_shape_defaults_and_cache_control(api_a: Api) -> None:
    r = api_a.mint_resp({"user_id": "alice", "name": "Alice"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["token"], str) and body["token"]
    assert body["expires_in"] == 300  # default ttl
    assert r.headers.get("Cache-Control") == NO_STORE
    # Issue 2: tokens are HS256 JWTs carrying exp (and iat).
    header, payload, _ = jwt_parts(body["token"])
    assert header.get("alg") == "HS256", header
    assert isinstance(payload.get("exp"), int), payload
    if "iat" in payload:
        assert payload["exp"] - payload["iat"] == 300, payload
    assert abs(payload["exp"] - (time.time() + 300)) < 60, payload


@pytest.mark.parametrize("ttl", [60, 61, 1800, 3600])
def test_mint_ttl_in_range(api_a: Api, ttl: int) -> None:
    r = api_a.mint_resp({"user_id": "alice", "ttl": ttl})
    assert r.status_code == 200, r.text
    assert r.json()["expires_in"] == ttl
    _, payload, _ = jwt_parts(r.json()["token"])
    assert abs(payload["exp"] - (time.time() + ttl)) < 60, payload


# Assumption (spec: "integer, 60-3600"): strings, fractions and booleans are not integers.
@pytest.mark.parametrize("ttl", [59, 3601, 0, -1, 10**12, "300", 300.5, True, [300], {"s": 300}])
def test_mint_bad_ttl_is_400(api_a: Api, ttl: object) -> None:
    assert_envelope(api_a.mint_resp({"user_id": "alice", "ttl": ttl}), 400)


# Assumption: user_id must be a non-empty string or a number; booleans are not numbers here.
@pytest.mark.parametrize("user_id", ["<missing>", None, "", [], {}, ["a"], {"id": 1}, True, False])
def test_mint_bad_user_id_is_400(api_a: Api, user_id: object) -> None:
    body = {} if user_id == "<missing>" else {"user_id": user_id}
    assert_envelope(api_a.mint_resp(body), 400)


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"alice"', "42", "null", ""])
def test_mint_non_object_body_is_400(api_a: Api, raw: str) -> None:
    r = api_a.post_raw("/edge/realtime/token", raw.encode())
    assert_envelope(r, 400)


def test_numeric_user_id_becomes_string_in_presence(api_a: Api, base_url: str) -> None:
    ch = uniq()
    tok = api_a.token(user_id=30, name="Thirty")
    with Sock(base_url, tok, ch) as s:
        assert s.presence == [{"id": "30", "name": "Thirty"}]


# --- who may open a socket ------------------------------------------------------------------------
def _refused_401(base_url: str, token: str, channel: str) -> None:
    status, body, _ = refusal(base_url, token=token, channel=channel)
    assert status == 401, (status, body)
    assert_refusal_envelope(401, body)


def test_ws_missing_token_is_401(base_url: str) -> None:
    status, body, _ = refusal(base_url, channel=uniq())
    assert status == 401, (status, body)
    assert_refusal_envelope(401, body)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 2000])
def test_ws_garbage_token_is_401(base_url: str, token: str) -> None:
    _refused_401(base_url, token, uniq())


def test_ws_tampered_payload_is_401(api_a: Api, base_url: str) -> None:
    tok = api_a.token(user_id="mallory")
    h, _, s = tok.split(".")
    _, payload, _ = jwt_parts(tok)
    for claim in list(payload):
        if payload[claim] == "mallory":
            payload[claim] = "admin"
    payload["exp"] = int(time.time()) + 10_000
    _refused_401(base_url, f"{h}.{b64(payload)}.{s}", uniq())


def test_ws_wrong_secret_is_401(api_a: Api, base_url: str) -> None:
    header, payload, _ = jwt_parts(api_a.token(user_id="eve"))
    signing = f"{b64(header)}.{b64(payload)}"
    sig = hmac.new(b"not-the-secret", signing.encode(), hashlib.sha256).digest()
    forged = signing + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    _refused_401(base_url, forged, uniq())


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_ws_alg_none_is_401(api_a: Api, base_url: str, alg: str) -> None:
    header, payload, _ = jwt_parts(api_a.token(user_id="eve"))
    header["alg"] = alg
    _refused_401(base_url, f"{b64(header)}.{b64(payload)}.", uniq())


def test_ws_token_with_other_tenant_claims_is_401(api_a: Api, api_b: Api, base_url: str) -> None:
    """A's signed token with its tenant-identifying claims swapped for B's is refused."""
    tok_a = api_a.token(user_id="eve")
    a_header, a_payload, sig_a = jwt_parts(tok_a)
    b_header, b_payload, _ = jwt_parts(api_b.token(user_id="eve"))
    volatile = ("exp", "iat", "nbf", "jti")
    header = {**a_header, **{k: v for k, v in b_header.items() if k not in volatile}}
    payload = {**a_payload, **{k: v for k, v in b_payload.items() if k not in volatile}}
    assert (header, payload) != (a_header, a_payload), "the tenant must be identifiable"
    _refused_401(base_url, f"{b64(header)}.{b64(payload)}.{sig_a}", uniq())


def test_edge_session_token_is_not_a_ws_token(api_a: Api, base_url: str) -> None:
    _refused_401(base_url, api_a.session(), uniq())


def test_application_key_is_not_a_ws_token(base_url: str) -> None:
    _refused_401(base_url, KEY_A, uniq())


# Assumption: the realtime token is handed to browsers (spec: "The token is what you pass to the
# client"), so it must never authorize server-side calls that the application key/session grants.
def test_ws_token_is_not_an_edge_bearer(api_a: Api) -> None:
    tok = api_a.token(user_id="browser")
    ch = uniq()
    assert_envelope(api_a.publish(ch, {"x": 1}, bearer=tok), 401)
    assert_envelope(api_a.history(ch, bearer=tok), 401)
    assert_envelope(api_a.sql("SELECT 1", bearer=tok), 401)
    assert_envelope(api_a.mint_resp({"user_id": "x"}, bearer=tok), 401)


def test_token_is_reusable_until_expiry(api_a: Api, base_url: str) -> None:
    """Spec: expiry 'controls the window during which the token can be used to open a new
    WebSocket connection' -- so one token opens several sockets inside that window."""
    tok = api_a.token(user_id="multi")
    ch = uniq()
    with Sock(base_url, tok, ch) as s1, Sock(base_url, tok, ch) as s2:
        assert s1.subscribed["action"] == s2.subscribed["action"] == "subscribed"


def test_unknown_route_is_404_envelope(base_url: str) -> None:
    assert_envelope(requests.get(f"{base_url}/edge/nope", timeout=5), 404)


@pytest.mark.parametrize("user_id", ["  Ünï cödé  ", "user:42/x?y=z&w", "😀", "0", 0, -7])
def test_user_id_is_echoed_exactly_as_a_string(api_a: Api, base_url: str, user_id: object) -> None:
    with Sock(base_url, api_a.token(user_id), uniq()) as s:
        assert s.presence == [{"id": str(user_id), "name": None}]
