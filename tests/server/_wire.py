"""Plain-wire helpers for the conformance suite: ``requests`` and ``websocket-client`` only.

Nothing here imports cohrt_sync's client code: the suite speaks the wire
protocol of the spec (``/work/shared/seed/realtime-api.md``) directly.
"""

from __future__ import annotations

import base64
import collections
import json
import socket
import time
import uuid
from typing import Any, Callable, Optional
from urllib.parse import urlencode

import requests
import websocket

#: Default wait for any single frame or HTTP answer (seconds).
TIMEOUT = 5.0

#: The exact Cache-Control the spec puts on mint responses.
NO_STORE = "private, no-store, max-age=0"

#: DESIGN §2 status names.
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    409: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
}


def uniq(prefix: str = "chat") -> str:
    """A channel name no other test uses."""
    return f"{prefix}:{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_envelope(resp: requests.Response, code: int, status: Optional[str] = None) -> dict:
    """Assert ``resp`` is the Google-style error envelope of DESIGN §2 with ``code``."""
    assert resp.status_code == code, (resp.status_code, resp.text[:500])
    assert resp.headers.get("Content-Type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert err["code"] == code, body
    assert isinstance(err["message"], str) and err["message"], body
    want = status or STATUS.get(code)
    if want is not None:
        assert err["status"] == want, body
    else:
        assert isinstance(err["status"], str) and err["status"], body
    return err


def assert_refusal_envelope(code: int, body: Any, status: Optional[str] = None) -> None:
    """Same check for a refused WebSocket handshake (body already decoded)."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    want = status or STATUS.get(code)
    if want is not None:
        assert body["error"]["status"] == want, body


class Api:
    """Thin ``requests`` wrapper for one tenant (one application key)."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.http = requests.Session()

    def url(self, path: str) -> str:
        return self.base_url + path

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", TIMEOUT)
        return self.http.request(method, self.url(path), **kw)

    def post_raw(self, path: str, raw: bytes) -> requests.Response:
        """POST ``raw`` as it is, labelled JSON, with ``?key=``: for malformed bodies."""
        return self.request(
            "POST",
            path,
            params={"key": self.key},
            data=raw,
            headers={"Content-Type": "application/json"},
        )

    # provisioning -----------------------------------------------------------
    def provision(self, body: Any = None, **kw: Any) -> requests.Response:
        if body is not None:
            kw["json"] = body
        return self.request(
            "POST", "/api/resources/realtime", headers={"Authorization": f"Bearer {self.key}"}, **kw
        )

    def deprovision(self, resource: str = "realtime") -> requests.Response:
        return self.request(
            "DELETE", f"/api/resources/{resource}", headers={"Authorization": f"Bearer {self.key}"}
        )

    # tokens -----------------------------------------------------------------
    def session_resp(self) -> requests.Response:
        return self.request("POST", "/edge/session", params={"key": self.key})

    def session(self) -> str:
        r = self.session_resp()
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    def mint_resp(self, body: Any, bearer: Optional[str] = None, **kw: Any) -> requests.Response:
        return self.request("POST", "/edge/realtime/token", json=body, **self._auth(bearer), **kw)

    def token(
        self, user_id: Any = "alice", name: Optional[str] = None, ttl: Optional[int] = None
    ) -> str:
        body: dict = {"user_id": user_id}
        if name is not None:
            body["name"] = name
        if ttl is not None:
            body["ttl"] = ttl
        r = self.mint_resp(body)
        assert r.status_code == 200, r.text
        return str(r.json()["token"])

    # edge -------------------------------------------------------------------
    def _auth(self, bearer: Optional[str]) -> dict:
        if bearer is not None:
            return {"headers": {"Authorization": f"Bearer {bearer}"}}
        return {"params": {"key": self.key}}

    def publish(
        self,
        channel: Any,
        data: Any,
        event: Optional[str] = None,
        persist: Optional[bool] = None,
        bearer: Optional[str] = None,
        headers: Optional[dict] = None,
    ) -> requests.Response:
        body: dict = {"channel": channel, "data": data}
        if event is not None:
            body["event"] = event
        if persist is not None:
            body["persist"] = persist
        auth = self._auth(bearer)
        if headers:
            auth.setdefault("headers", {}).update(headers)
        return self.request("POST", "/edge/realtime", json=body, **auth)

    def publish_ok(self, channel: str, data: Any, **kw: Any) -> dict:
        r = self.publish(channel, data, **kw)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def history(
        self, channel: Optional[str], bearer: Optional[str] = None, **params: Any
    ) -> requests.Response:
        auth = self._auth(bearer)
        q = dict(auth.pop("params", {}))
        if channel is not None:
            q["channel"] = channel
        q.update({k: v for k, v in params.items() if v is not None})
        return self.request("GET", "/edge/realtime/history", params=q, **auth)

    def history_ok(self, channel: str, **params: Any) -> list:
        r = self.history(channel, **params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"messages"}, body
        return list(body["messages"])

    def sql(
        self, query: Any, params: Any = None, bearer: Optional[str] = None
    ) -> requests.Response:
        body: dict = {"query": query}
        if params is not None:
            body["params"] = params
        return self.request("POST", "/edge/database", json=body, **self._auth(bearer))

    def sql_rows(self, query: str, params: Optional[list] = None) -> list:
        r = self.sql(query, params or [])
        assert r.status_code == 200, r.text
        return list(r.json()["results"])


def ws_url(base_url: str, **query: Any) -> str:
    base = "ws" + base_url[len("http") :] if base_url.startswith("http") else base_url
    return f"{base.rstrip('/')}/edge/realtime?{urlencode(query)}"


def refusal(base_url: str, **query: Any) -> tuple:
    """Open a socket that must be refused; return (status, decoded body, headers)."""
    try:
        ws = websocket.create_connection(ws_url(base_url, **query), timeout=TIMEOUT)
    except websocket.WebSocketBadStatusException as exc:
        body: Any = None
        if exc.resp_body:
            try:
                body = json.loads(exc.resp_body)
            except ValueError:
                body = exc.resp_body
        return exc.status_code, body, exc.resp_headers or {}
    ws.close()
    raise AssertionError(f"socket opened for {query!r}; expected a refusal before the upgrade")


class Sock:
    """One WebSocket on one channel, with a backlog so no frame is ever lost.

    ``next()`` returns the oldest unread frame; ``until(pred)`` returns the
    first unread frame matching ``pred`` and leaves the others unread.
    """

    def __init__(self, base_url: str, token: str, channel: str, *, handshake: bool = True) -> None:
        self.channel = channel
        self.ws = websocket.create_connection(
            ws_url(base_url, token=token, channel=channel),
            timeout=TIMEOUT,
            skip_utf8_validation=True,
        )
        self.backlog: collections.deque = collections.deque()
        self.connected: dict = {}
        self.subscribed: dict = {}
        if handshake:
            self.connected = self.next()
            self.subscribed = self.next()

    def __enter__(self) -> Sock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def presence(self) -> list:
        return list(self.subscribed.get("presence", []))

    def send(self, obj: Any) -> None:
        self.ws.send(obj if isinstance(obj, str) else json.dumps(obj))

    def _read(self, timeout: float) -> dict:
        self.ws.settimeout(max(timeout, 0.01))
        try:
            raw = self.ws.recv()
        except websocket.WebSocketProtocolException as exc:
            # e.g. the server wrote an HTTP error page onto the upgraded connection
            raise ConnectionError(f"socket broken: not a WebSocket frame ({exc})") from exc
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        if raw == "":
            raise ConnectionError("socket closed by the server")
        frame = json.loads(raw)
        assert isinstance(frame, dict), raw
        return frame

    def next(self, timeout: float = TIMEOUT) -> dict:
        if self.backlog:
            return dict(self.backlog.popleft())
        return self._read(timeout)

    def until(self, pred: Callable[[dict], bool], timeout: float = TIMEOUT) -> dict:
        for i, frame in enumerate(self.backlog):
            if pred(frame):
                del self.backlog[i]
                return dict(frame)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"no matching frame within {timeout}s; unread: {list(self.backlog)}"
                )
            try:
                frame = self._read(left)
            except websocket.WebSocketTimeoutException:
                raise TimeoutError(
                    f"no matching frame within {timeout}s; unread: {list(self.backlog)}"
                ) from None
            if pred(frame):
                return frame
            self.backlog.append(frame)

    def publish(self, data: Any, **extra: Any) -> dict:
        """Publish and return the ``published`` ack (fails on an error frame)."""
        frame = {"action": "publish", "data": data, **extra}
        self.send(frame)
        got = self.until(lambda f: f.get("action") == "published" or "error" in f)
        assert "error" not in got, got
        return got

    def reply(self, timeout: float = TIMEOUT) -> dict:
        """The next frame that is not presence (join/leave) traffic."""
        return self.until(lambda f: f.get("action") not in ("join", "leave"), timeout)

    def message(
        self, pred: Callable[[dict], bool] = lambda f: True, timeout: float = TIMEOUT
    ) -> dict:
        """The next live publication frame (not presence, not acks) matching ``pred``."""
        return self.until(lambda f: "data" in f and "error" not in f and pred(f), timeout)

    def close(self) -> None:
        try:
            self.ws.close(timeout=2)
        except Exception:
            pass

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        sock = self.ws.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def without_event(frame: dict) -> dict:
    """Drop an ``event`` that merely mirrors ``action``.

    The spec shows connected/subscribed/join/leave frames without ``event``;
    issue 2 asks for ``action == event`` on every received frame, so a server
    may add it -- but only equal to ``action``.
    """
    frame = dict(frame)
    if "event" in frame:
        assert frame["event"] == frame.get("action"), frame
        del frame["event"]
    return frame


def jwt_parts(token: str) -> tuple:
    """Decode a JWT's header and payload without verifying anything."""
    h, p, s = token.split(".")
    return _b64json(h), _b64json(p), s


def _b64json(part: str) -> dict:
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def b64(obj: Any) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def poll(fn: Callable[[], Any], timeout: float = TIMEOUT, interval: float = 0.02) -> Any:
    """Call ``fn`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s (last: {value!r})")
        time.sleep(interval)
