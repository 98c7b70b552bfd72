"""JWT forgery matrix: every forged, malformed or misused token is a 401, never a socket.

Tokens are forged with PyJWT (or by hand where PyJWT refuses to make them)
using the tenants' real signing secrets, read from the server's state
database, so that every claim check is reached with a valid signature and
is tested on its own. A positive control made by the same helpers proves
that the forging is right: only the one flaw of each case is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import jwt
import pytest
import requests
import websocket

from cohrt_sync.server import LocalServer
from cohrt_sync.server.state import key_digest

from ._proc import wait_until

KEY_A = "kfa_3b8e51c07d2f4a96"
KEY_B = "kfb_94c2d7e15a0b3f68"
ISSUER = "cohrt-sync-local"
#: Marks a claim or header field the forged token must not carry.
DROP: Any = object()
TIMEOUT = 5.0


class Ctx:
    """The server under attack, its two tenants' ids and secrets, and real tokens."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.base = server.base_url
        self.tid_a = "t_" + key_digest(KEY_A)[:20]
        self.tid_b = "t_" + key_digest(KEY_B)[:20]
        with sqlite3.connect(str(Path(server.data_dir) / "server.sqlite3")) as db:
            rows = dict(db.execute("SELECT id, secret FROM tenants").fetchall())
        self.secret_a = bytes(rows[self.tid_a])
        self.secret_b = bytes(rows[self.tid_b])
        self.edge_a = self._post("/edge/session", params={"key": KEY_A})["token"]
        self.realtime_a = self._post(
            "/edge/realtime/token", params={"key": KEY_A}, json={"user_id": "alice"}
        )["token"]
        meeting = self._post("/edge/realtimekit/meetings", params={"key": KEY_A}, json={})
        participant = self._post(
            f"/edge/realtimekit/meetings/{meeting['data']['id']}/participants",
            params={"key": KEY_A},
            json={"preset_name": "group_call_host", "name": "Host"},
        )
        self.rtk_a = participant["data"]["token"]

    def _post(self, path: str, **kw: Any) -> Dict[str, Any]:
        r = requests.post(self.base + path, timeout=TIMEOUT, **kw)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())

    def real(self, kind: str) -> str:
        return {"edge": self.edge_a, "realtime": self.realtime_a, "rtk": self.rtk_a}[kind]

    def claims(self, kind: str, **over: Any) -> Dict[str, Any]:
        """Claims as the server mints them for tenant A (the RTK ones copied from a real
        participant token), with ``over`` applied; ``DROP`` removes a claim."""
        now = int(time.time())
        base: Dict[str, Any] = {
            "iss": ISSUER,
            "tid": self.tid_a,
            "typ": kind,
            "iat": now,
            "exp": now + 300,
            "jti": "0123456789abcdef",
        }
        if kind == "realtime":
            base.update(sub="mallory", name="Mallory")
        if kind == "rtk":
            real = jwt.decode(self.rtk_a, options={"verify_signature": False})
            for claim in ("sub", "name", "app_id", "meeting_id", "preset_name"):
                base[claim] = real[claim]
        base.update(over)
        return {k: v for k, v in base.items() if v is not DROP}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def raw_token(header: Any, payload: Any, secret: Optional[bytes], digest: str = "sha256") -> str:
    """A JWT built by hand: any header, any payload (even not JSON), HMAC or no signature."""
    head = b64url(json.dumps(header).encode())
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{head}.{b64url(body)}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), getattr(hashlib, digest)).digest()
    return f"{signing_input}.{b64url(mac)}"


def signed(
    ctx: Ctx, kind: str, secret: Optional[bytes] = None, headers: Any = None, **over: Any
) -> str:
    """A token PyJWT signs with tenant A's real secret (or ``secret``)."""
    return jwt.encode(
        ctx.claims(kind, **over), secret or ctx.secret_a, algorithm="HS256", headers=headers
    )


def swap_payload(token: str, change: Callable[[Dict[str, Any]], None]) -> str:
    """``token`` with its payload changed and its original signature kept."""
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    change(claims)
    return f"{head}.{b64url(json.dumps(claims).encode())}.{sig}"


Forge = Callable[[Ctx, str], str]
KINDS = ("realtime", "edge", "rtk")
NOT_EDGE = ("realtime", "rtk")
NOT_REALTIME = ("edge", "rtk")
NOT_RTK = ("realtime", "edge")
RTK_ONLY = ("rtk",)
REQUIRED = {
    "edge": ("iss", "tid", "typ", "exp"),
    "realtime": ("iss", "tid", "typ", "exp", "sub"),
    "rtk": ("iss", "tid", "typ", "exp", "sub", "app_id", "meeting_id", "preset_name"),
}

#: case name -> forge(ctx, kind), or (forge, the kinds it applies to).
_CASES: Dict[str, Any] = {}
for _alg in ("none", "None", "NONE", "nOnE"):
    _CASES[f"alg-{_alg}"] = lambda c, k, a=_alg: raw_token(
        {"alg": a, "typ": "JWT"}, c.claims(k), None
    )
for _claim in sorted({c for claims in REQUIRED.values() for c in claims}):
    _CASES[f"missing-{_claim}"] = (
        lambda c, k, m=_claim: signed(c, k, **{m: DROP}),
        tuple(k for k in KINDS if _claim in REQUIRED[k]),
    )
_CASES.update(
    {
        "alg-none-with-a-valid-hmac": lambda c, k: raw_token(
            {"alg": "none"}, c.claims(k), c.secret_a
        ),
        "no-alg-header": lambda c, k: raw_token({"typ": "JWT"}, c.claims(k), c.secret_a),
        "alg-RS256-signed-with-the-secret": lambda c, k: raw_token(
            {"alg": "RS256", "typ": "JWT"}, c.claims(k), c.secret_a
        ),
        "alg-ES256-signed-with-the-secret": lambda c, k: raw_token(
            {"alg": "ES256", "typ": "JWT"}, c.claims(k), c.secret_a
        ),
        "alg-HS384": lambda c, k: raw_token({"alg": "HS384"}, c.claims(k), c.secret_a, "sha384"),
        "alg-HS512": lambda c, k: raw_token({"alg": "HS512"}, c.claims(k), c.secret_a, "sha512"),
        "alg-hs256-lowercase": lambda c, k: raw_token({"alg": "hs256"}, c.claims(k), c.secret_a),
        "wrong-secret": lambda c, k: signed(c, k, secret=b"not-the-secret" * 3),
        "other-tenants-secret-this-tid": lambda c, k: signed(c, k, secret=c.secret_b),
        "this-secret-other-tid": lambda c, k: signed(c, k, tid=c.tid_b),
        "unknown-tid": lambda c, k: signed(c, k, tid="t_0000000000000000000"),
        "expired": lambda c, k: signed(c, k, exp=int(time.time()) - 1),
        "expired-long-ago": lambda c, k: signed(c, k, iat=1, exp=2),
        "nbf-in-the-future": lambda c, k: signed(c, k, nbf=int(time.time()) + 600),
        "iat-in-the-future": lambda c, k: signed(c, k, iat=int(time.time()) + 600),
        "wrong-iss": lambda c, k: signed(c, k, iss="someone-else"),
        "aud-present": lambda c, k: signed(c, k, aud="cohrt-sync-local"),
        "exp-a-string": lambda c, k: signed(c, k, exp=str(int(time.time()) + 300)),
        "exp-a-float": lambda c, k: signed(c, k, exp=time.time() + 300.5),
        "exp-a-bool": lambda c, k: signed(c, k, exp=True),
        "exp-null": lambda c, k: signed(c, k, exp=None),
        "tid-an-int": lambda c, k: signed(c, k, tid=7),
        "tid-null": lambda c, k: signed(c, k, tid=None),
        "typ-a-list": lambda c, k: signed(c, k, typ=[k]),
        "iss-a-list": lambda c, k: raw_token(
            {"alg": "HS256"}, c.claims(k, iss=[ISSUER]), c.secret_a
        ),
        "iat-a-string": lambda c, k: signed(c, k, iat="yesterday"),
        "nbf-a-string": lambda c, k: signed(c, k, nbf="now"),
        "jti-an-int": lambda c, k: signed(c, k, jti=5),
        "name-an-int": (lambda c, k: signed(c, k, name=5), NOT_EDGE),
        "sub-an-int": (lambda c, k: signed(c, k, sub=42), NOT_EDGE),
        "sub-null": (lambda c, k: signed(c, k, sub=None), NOT_EDGE),
        "sub-empty": (lambda c, k: signed(c, k, sub=""), NOT_EDGE),
        "sub-a-list": (lambda c, k: signed(c, k, sub=["admin"]), NOT_EDGE),
        "meeting_id-an-int": (lambda c, k: signed(c, k, meeting_id=1), RTK_ONLY),
        "typ-edge": (lambda c, k: signed(c, k, typ="edge"), NOT_EDGE),
        "typ-realtime": (lambda c, k: signed(c, k, typ="realtime"), NOT_REALTIME),
        "typ-rtk": (lambda c, k: signed(c, k, typ="rtk"), NOT_RTK),
        "real-edge-token": (lambda c, k: c.edge_a, NOT_EDGE),
        "real-realtime-token": (lambda c, k: c.realtime_a, NOT_REALTIME),
        "real-rtk-token": (lambda c, k: c.rtk_a, NOT_RTK),
        "header-kid": lambda c, k: signed(c, k, headers={"kid": "../../server.sqlite3"}),
        "header-jku": lambda c, k: signed(c, k, headers={"jku": "http://127.0.0.1:9/jwks.json"}),
        "header-x5u": lambda c, k: signed(c, k, headers={"x5u": "http://127.0.0.1:9/cert.pem"}),
        "header-jwk": lambda c, k: signed(
            c, k, headers={"jwk": {"kty": "oct", "k": b64url(b"attacker")}}
        ),
        "header-crit": lambda c, k: signed(c, k, headers={"crit": ["exp"]}),
        "header-b64-false": lambda c, k: raw_token(
            {"alg": "HS256", "b64": False, "crit": ["b64"]}, c.claims(k), c.secret_a
        ),
        "header-typ-not-jwt": lambda c, k: signed(c, k, headers={"typ": "at+jwt"}),
        "header-not-an-object": lambda c, k: raw_token(["HS256"], c.claims(k), c.secret_a),
        "payload-not-an-object": lambda c, k: raw_token(
            {"alg": "HS256"}, [c.claims(k)], c.secret_a
        ),
        "payload-not-json": lambda c, k: raw_token({"alg": "HS256"}, b"\xff{tid", c.secret_a),
        "tampered-payload-keeps-signature": lambda c, k: swap_payload(
            c.real(k), lambda p: p.update(exp=p["exp"] + 3600, sub="admin")
        ),
        "tampered-tenant-keeps-signature": lambda c, k: swap_payload(
            c.real(k), lambda p: p.update(tid=c.tid_b)
        ),
        "signature-truncated": lambda c, k: c.real(k)[:-2],
        "signature-stripped": lambda c, k: c.real(k).rsplit(".", 1)[0] + ".",
        "two-segments": lambda c, k: c.real(k).rsplit(".", 1)[0],
        "four-segments": lambda c, k: c.real(k) + "." + c.real(k).split(".")[2],
        "oversized-signature": lambda c, k: c.real(k) + "A" * 6000,
        "oversized-payload": lambda c, k: swap_payload(
            c.real(k), lambda p: p.update(pad="x" * 4000)
        ),
        "not-base64": lambda c, k: "!!!.???.***",
        "dots-only": lambda c, k: "..",
    }
)
CASES: Dict[str, Tuple[Forge, Tuple[str, ...]]] = {
    name: case if isinstance(case, tuple) else (case, KINDS) for name, case in _CASES.items()
}
MATRIX = [(name, kind) for name in sorted(CASES) for kind in CASES[name][1]]


@pytest.fixture(scope="module")
def ctx() -> Iterator[Ctx]:
    with LocalServer([KEY_A, KEY_B], provision=True, rtk_delay_ms=0) as server:
        yield Ctx(server)


# -- the surfaces a token opens -------------------------------------------------------------------
def _envelope(status: int, body: Any, what: str) -> None:
    assert status == 401, f"{what}: HTTP {status}: {body!r:.300}"
    assert isinstance(body, dict) and set(body) == {"error"}, f"{what}: {body!r:.300}"
    err = body["error"]
    assert err["code"] == 401 and err["status"] == "UNAUTHENTICATED", f"{what}: {body}"
    assert isinstance(err["message"], str) and "\n" not in err["message"], f"{what}: {body}"


def ws_refused(ctx: Ctx, token: str) -> None:
    """The handshake is refused with the 401 envelope and no socket exists."""
    url = ctx.base.replace("http", "ws", 1) + "/edge/realtime"
    query = requests.models.RequestEncodingMixin._encode_params(  # type: ignore[attr-defined]
        {"token": token, "channel": "forgery"}
    )
    try:
        ws = websocket.create_connection(f"{url}?{query}", timeout=TIMEOUT)
    except websocket.WebSocketBadStatusException as e:
        _envelope(e.status_code, json.loads(e.resp_body or b"null"), "WebSocket handshake")
    else:
        ws.close()
        raise AssertionError("the forged token opened a socket")
    assert ctx.server.socket_count() == 0


EDGE_CALLS: List[Tuple[str, str, Dict[str, Any]]] = [
    ("GET", "/edge/realtime/history", {"params": {"channel": "forgery"}}),
    ("POST", "/edge/realtime", {"json": {"channel": "forgery", "data": {"x": 1}}}),
    ("POST", "/edge/realtime/token", {"json": {"user_id": "mallory"}}),
    ("POST", "/edge/database", {"json": {"query": "SELECT 1 AS one"}}),
    ("GET", "/edge/realtimekit/meetings", {}),
]


def edge_calls(ctx: Ctx, token: str) -> List[Tuple[str, int, Any]]:
    out = []
    for method, path, kw in EDGE_CALLS:
        r = requests.request(
            method,
            ctx.base + path,
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
            **kw,
        )
        try:
            body = r.json()
        except ValueError:
            body = r.text
        out.append((f"{method} {path}", r.status_code, body))
    return out


def rtk_verdict(ctx: Ctx, token: str) -> Dict[str, Any]:
    r = requests.post(
        ctx.base + "/edge/realtimekit/_local/verify-token",
        params={"key": KEY_A},
        json={"token": token},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200, r.text
    return dict(r.json()["data"])


def attack(ctx: Ctx, kind: str, token: str) -> None:
    if kind == "realtime":
        ws_refused(ctx, token)
    elif kind == "edge":
        for what, status, body in edge_calls(ctx, token):
            _envelope(status, body, what)
    else:
        verdict = rtk_verdict(ctx, token)
        assert verdict["valid"] is False and verdict["reason"], verdict


# -- the matrix ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_the_forging_helpers_make_tokens_the_server_accepts(ctx: Ctx, kind: str) -> None:
    """The positive control: without a flaw, the same helpers' tokens work everywhere."""
    for token in (signed(ctx, kind), ctx.real(kind)):
        if kind == "realtime":
            url = ctx.base.replace("http", "ws", 1) + "/edge/realtime"
            ws = websocket.create_connection(
                f"{url}?token={token}&channel=forgery", timeout=TIMEOUT
            )
            assert json.loads(ws.recv())["action"] == "connected"
            ws.close()
            wait_until(lambda: ctx.server.socket_count() == 0, TIMEOUT)
        elif kind == "edge":
            for what, status, body in edge_calls(ctx, token):
                assert status == 200, (what, status, body)
        else:
            assert rtk_verdict(ctx, token)["valid"] is True


@pytest.mark.parametrize("case, kind", MATRIX, ids=[f"{c}-{k}" for c, k in MATRIX])
def test_forged_token_is_refused(ctx: Ctx, case: str, kind: str) -> None:
    attack(ctx, kind, CASES[case][0](ctx, kind))


def test_a_refusal_says_what_is_wrong_in_one_line(ctx: Ctx) -> None:
    token = signed(ctx, "realtime", sub=DROP)
    url = ctx.base.replace("http", "ws", 1) + "/edge/realtime"
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(f"{url}?token={token}&channel=forgery", timeout=TIMEOUT)
    message = json.loads(info.value.resp_body)["error"]["message"]
    assert message == 'invalid or expired token: the token has no "sub" claim', message
