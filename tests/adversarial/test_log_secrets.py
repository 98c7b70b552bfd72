"""The application key and the tokens never reach a log line or an exception.

Server: ``cohrt-sync serve --log-level debug`` in a child process is used
normally and attacked with malformed requests carrying the key in every
position (request line, query under encoded names, headers with control
bytes, header lines without a colon, over-long lines, bad chunking …); then
everything it printed is searched for the key (plain, percent-encoded, and
any fragment of it) and for every token it minted.

Client: every log record at DEBUG reaching the root logger, and every
exception the library raises (walked through its whole chain: causes,
contexts, args, attributes, requests' request/response objects, urllib3's
errors), while calls succeed and fail (server down, bad key, timeouts).
"""

from __future__ import annotations

import logging
import re
import signal
import socket
import threading
import traceback
import urllib.parse
from typing import Any, Callable, Dict, Iterator, List, Optional, Set

import pytest
import requests
import websocket

import cohrt_sync
from cohrt_sync.retry import Retry
from cohrt_sync.server import LocalServer

from ._proc import ServerProcess, wait_until

KEY = "klog_5e2a9c7f1b3d8e64a0"
KEY_2 = "klog2_0f9e8d7c6b5a4938"
#: Fragments this long of a secret count as a leak (a truncated log excerpt).
FRAGMENT = 10
TIMEOUT = 5.0


def forms(secret: str) -> List[str]:
    """A secret as it may show up: as is, percent-encoded, every byte encoded."""
    every = "".join(f"%{b:02X}" for b in secret.encode())
    return [secret, urllib.parse.quote(secret, safe=""), every, every.lower()]


def fragments(secret: str) -> Set[str]:
    return {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}


#: Any signed token in a log is a leak, whoever minted it.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")


def leaks(text: str, secrets: List[str]) -> List[str]:
    """The secrets (or fragments of them), and any JWT, found in ``text``."""
    found = JWT.findall(text)
    for secret in secrets:
        for form in [*forms(secret), *fragments(secret)]:
            if form in text:
                found.append(form)
    return found


# -- the server ----------------------------------------------------------------------------------
def _raw(host: str, port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection; what came back before the server closed it."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError:
            pass
    return b"".join(chunks)


def malformed_requests(key: str, jwt: str) -> Dict[str, bytes]:
    """Requests aiohttp rejects (or serves) with the key or a token somewhere in them."""
    k, t = key.encode(), jwt.encode()
    enc = "".join(f"%{b:02x}" for b in k).encode()
    host = b"Host: 127.0.0.1\r\nConnection: close\r\n"
    return {
        "bearer-then-control-byte": b"GET /edge/realtime/history?channel=a HTTP/1.1\r\n"
        + host
        + b"Authorization: Bearer "
        + k
        + b"\x01\r\n\r\n",
        "jwt-bearer-then-control-byte": b"GET /edge/realtime/history?channel=a HTTP/1.1\r\n"
        + host
        + b"Authorization: Bearer "
        + t
        + b"\x7f\r\n\r\n",
        "basic-auth-then-control-byte": b"GET / HTTP/1.1\r\n"
        + host
        + b"Authorization: Basic "
        + k
        + b"\x02\r\n\r\n",
        "schemeless-auth-then-nul": b"GET / HTTP/1.1\r\n"
        + host
        + b"Authorization: "
        + k
        + b"\x00\r\n\r\n",
        "key-in-a-bad-request-line": b"GET /edge/realtime/history?key="
        + k
        + b" x HTTP/1.1\r\n"
        + host
        + b"\r\n",
        "encoded-key-name-in-a-bad-request-line": b"GET /edge/realtime/history?%6Bey="
        + k
        + b" x HTTP/1.1\r\n"
        + host
        + b"\r\n",
        "nul-after-key-in-request-line": b"GET /edge/realtime/history?key="
        + k
        + b"\x00 HTTP/1.1\r\n"
        + host
        + b"\r\n",
        "bad-http-version": b"GET /?key=" + k + b" HTTP/9.x\r\n" + host + b"\r\n",
        "key-as-method": k + b" / HTTP/1.1\r\n" + host + b"\r\n",
        "key-as-second-request-method": b"GET / HTTP/1.1\r\n"
        + host
        + b"\r\n"
        + k
        + b" / HTTP/1.1\r\n\r\n",
        "header-line-without-colon": b"GET / HTTP/1.1\r\n" + host + b"X-Api-Key " + k + b"\r\n\r\n",
        "key-as-header-name": b"GET / HTTP/1.1\r\n" + host + k + b"\x01: 1\r\n\r\n",
        "over-long-header-cutting-the-key": b"GET / HTTP/1.1\r\n"
        + host
        + b"X-Pad: "
        + b"p" * 88
        + k
        + b"q" * 9000
        + b"\r\n\r\n",
        "over-long-request-line": b"GET /edge/realtime/history?key="
        + k
        + b"&x="
        + b"a" * 9000
        + b" HTTP/1.1\r\n\r\n",
        "bad-content-length": b"POST /edge/database HTTP/1.1\r\n"
        + host
        + b"Content-Length: 1"
        + k
        + b"\r\n\r\n",
        "bad-chunk-size": b"POST /edge/database?key="
        + k
        + b" HTTP/1.1\r\n"
        + host
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + k
        + b"\r\nxx\r\n0\r\n\r\n",
        "bad-percent-encoding": b"GET /edge/realtime/history?key="
        + k
        + b"%zz&channel=%E0%A4%A HTTP/1.1\r\n"
        + host
        + b"\r\n",
        "invalid-utf8-path": b"GET /edge/\xff\xfe/"
        + k
        + b"?key="
        + k
        + b" HTTP/1.1\r\n"
        + host
        + b"\r\n",
        "key-in-the-path": b"GET /edge/" + k + b" HTTP/1.1\r\n" + host + b"\r\n",
        "encoded-key-in-the-path": b"GET /edge/" + enc + b" HTTP/1.1\r\n" + host + b"\r\n",
        "encoded-key-name-served": b"GET /edge/realtime/history?%6Bey="
        + k
        + b"&channel=a HTTP/1.1\r\n"
        + host
        + b"\r\n",
        "fully-encoded-key-value": b"GET /edge/realtime/history?key="
        + enc
        + b"&channel=a HTTP/1.1\r\n"
        + host
        + b"\r\n",
        "key-as-another-parameter": b"GET /edge/realtime/history?key="
        + k
        + b"&channel="
        + k
        + b" HTTP/1.1\r\n"
        + host
        + b"\r\n",
        "encoded-token-name": b"GET /edge/realtime?%74oken="
        + t
        + b"&channel=a HTTP/1.1\r\n"
        + host
        + b"\r\n",
        "uppercase-key-name": b"GET /edge/realtime/history?KEY="
        + k
        + b"&Token="
        + t
        + b" HTTP/1.1\r\n"
        + host
        + b"\r\n",
        "websocket-bad-version": b"GET /edge/realtime?token="
        + t
        + b"&channel=a HTTP/1.1\r\n"
        + host
        + b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
        + k
        + b"\r\nSec-WebSocket-Version: "
        + k
        + b"\r\n\r\n",
        "cookie-then-control-byte": b"GET / HTTP/1.1\r\n"
        + host
        + b"Cookie: key="
        + k
        + b"\x03\r\n\r\n",
        "http2-preface-with-key": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + k,
        "binary-garbage-with-key": b"\x16\x03\x01\x02\x00\x01" + k + b"\xff" * 16 + b"\r\n\r\n",
    }


def test_server_output_at_debug_holds_no_key_or_token() -> None:
    args = ["--key", KEY, "--key", KEY_2, "--provision", "--log-level", "debug"]
    with ServerProcess(args) as srv:
        base = srv.base_url
        host, port = srv.host_port
        secrets = [KEY, KEY_2]
        # Normal use, every way the key and tokens travel.
        session = requests.post(f"{base}/edge/session", params={"key": KEY}, timeout=TIMEOUT)
        bearer = session.json()["token"]
        auth = {"Authorization": f"Bearer {bearer}"}
        minted = requests.post(
            f"{base}/edge/realtime/token", json={"user_id": "u1"}, headers=auth, timeout=TIMEOUT
        ).json()["token"]
        secrets += [bearer, minted]
        requests.post(
            f"{base}/edge/realtime", json={"channel": "c", "data": 1}, headers=auth, timeout=TIMEOUT
        ).raise_for_status()
        requests.get(
            f"{base}/edge/realtime/history", params={"channel": "c", "key": KEY}, timeout=TIMEOUT
        ).raise_for_status()
        requests.post(
            f"{base}/edge/database", json={"query": "SELECT 1"}, headers=auth, timeout=TIMEOUT
        ).raise_for_status()
        requests.get(
            f"{base}/api/resources", headers={"Authorization": f"Bearer {KEY_2}"}, timeout=TIMEOUT
        ).raise_for_status()
        requests.post(
            f"{base}/edge/realtimekit/meetings?key={KEY}", json={}, timeout=TIMEOUT
        ).raise_for_status()
        ws = websocket.create_connection(
            f"{base.replace('http', 'ws', 1)}/edge/realtime?token={minted}&channel=c",
            timeout=TIMEOUT,
        )
        ws.send('{"action": "publish", "data": "' + KEY + '"}')
        ws.close()
        requests.post(f"{base}/edge/session", params={"key": KEY + "x"}, timeout=TIMEOUT)
        # The attack.
        answered = {}
        for name, data in malformed_requests(KEY, bearer).items():
            answered[name] = _raw(host, port, data)
        marker = "/log-marker-end-of-attack"
        requests.get(base + marker, timeout=TIMEOUT)
        wait_until(lambda: marker in srv.log_text(), TIMEOUT)
        assert srv.alive(), srv.log_text()[-3000:]
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGINT)
        srv.proc.wait(timeout=15)
        output = srv.log_text()
    # Not vacuous: the attack reached aiohttp's error paths and the access log at DEBUG.
    assert "Error handling request" in output, output[-3000:]
    assert "aiohttp.access" in output and "DEBUG" in output, output[-3000:]
    assert all(answered.values()), [n for n, a in answered.items() if not a]
    found = leaks(output, secrets)
    if found:
        lines = [line for line in output.splitlines() if any(f in line for f in found)]
        shown = "\n".join(line[:160] for line in lines[:40])
        raise AssertionError(f"{len(lines)} output lines hold a secret:\n{shown}")


# -- the client ----------------------------------------------------------------------------------
class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: List[logging.LogRecord] = []
        self.formatted: List[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.formatted.append(self.format(record))


@pytest.fixture()
def root_at_debug() -> Iterator[_Everything]:
    root = logging.getLogger()
    handler = _Everything()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    websocket.enableTrace(True, handler=handler)
    try:
        yield handler
    finally:
        websocket.enableTrace(False)
        logging.getLogger("websocket").removeHandler(handler)
        root.removeHandler(handler)
        root.setLevel(level)


_LEAVES = (str, bytes, bytearray)
_SKIP = (int, float, bool, type(None), type)


def secret_paths(root: BaseException, secrets: List[str]) -> List[str]:
    """Where in ``root``'s object graph (chain, args, attributes, containers) a secret is."""
    found: List[str] = []
    seen: Set[int] = set()
    todo: List[Any] = [(root, "exc")]
    while todo:
        obj, path = todo.pop()
        if id(obj) in seen or isinstance(obj, _SKIP) or path.count(".") > 14:
            continue
        seen.add(id(obj))
        if isinstance(obj, _LEAVES):
            text = obj if isinstance(obj, str) else bytes(obj).decode("latin-1")
            if leaks(text, secrets):
                found.append(path)
            continue
        if isinstance(obj, (cohrt_sync.Client, threading.Thread)) or callable(obj):
            continue  # the client holds its key by design; code is not data
        if isinstance(obj, BaseException):
            todo += [(obj.__cause__, path + ".__cause__"), (obj.__context__, path + ".__context__")]
            todo += [(obj.args, path + ".args"), (str(obj), path + ".str()")]
            todo.append((getattr(obj, "__notes__", None), path + ".__notes__"))
        if isinstance(obj, dict) or (hasattr(obj, "items") and hasattr(obj, "keys")):
            try:
                items = list(obj.items())
            except Exception:
                items = []
            for k, v in items:
                todo += [(k, f"{path}<key>"), (v, f"{path}[{k!r}]")]
            if isinstance(obj, dict):
                continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            todo += [(v, f"{path}[{i}]") for i, v in enumerate(obj)]
            continue
        for name, value in list(getattr(obj, "__dict__", {}).items()):
            todo.append((value, f"{path}.{name}"))
        for name in getattr(type(obj), "__slots__", ()) or ():
            todo.append((getattr(obj, name, None), f"{path}.{name}"))
    return found


class Silent:
    """A listener that accepts connections and never answers (read timeouts)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()


class NoSessionEndpoint(requests.Session):
    """A real session whose ``/edge/session`` calls miss (404), so the client sends
    ``?key=`` on every call, the path that puts the key into URLs."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().request(
            method, url.replace("/edge/session", "/edge/no-session"), *args, **kwargs
        )


def test_client_logs_and_exceptions_hold_no_key(root_at_debug: _Everything) -> None:
    raised: List[BaseException] = []

    def expect(error: type, call: Callable[[], Any]) -> None:
        with pytest.raises(error) as info:
            call()
        raised.append(info.value)

    silent = Silent()
    server = LocalServer([KEY], provision=True).start()
    fast = Retry(total=1, backoff_factor=0.001)
    clients: List[cohrt_sync.Client] = []

    def client(url: Optional[str] = None, key: str = KEY, **kw: Any) -> cohrt_sync.Client:
        kw.setdefault("retry", fast)
        c = cohrt_sync.Client(key=key, base_url=url or server.base_url, **kw)
        clients.append(c)
        return c

    try:
        # Success, with the bearer and with ?key= on every call.
        for ok in (client(), client(session=NoSessionEndpoint())):
            ok.publish("c", {"n": 1})
            ok.history("c")
            ok.sql("SELECT 1 AS one")
            ok.mint_token("u1")
            ok.provision()
            ch = ok.subscribe("c", user_id="u1")
            ch.publish({"n": 2})
            ch.close()
        # Server down: connection refused on every kind of call.
        down = client("http://127.0.0.1:9")
        for call in (
            lambda: down.history("c"),
            lambda: down.publish("c", 1),
            lambda: down.provision(),
            lambda: down.sql("SELECT 1"),
        ):
            expect(cohrt_sync.CohrtConnectionError, call)
        down_key = client("http://127.0.0.1:9", session=NoSessionEndpoint())
        expect(cohrt_sync.CohrtConnectionError, lambda: down_key.history("c"))
        # Read timeouts: the request (and its URL) was sent, no answer came.
        slow = client(silent.url, timeout=(1.0, 0.2))
        expect(cohrt_sync.CohrtTimeoutError, lambda: slow.history("c"))
        expect(cohrt_sync.CohrtTimeoutError, lambda: slow.provision())
        slow_key = client(silent.url, timeout=(1.0, 0.2), session=NoSessionEndpoint())
        expect(cohrt_sync.CohrtTimeoutError, lambda: slow_key.history("c"))
        # A bad key, and a subscribe whose socket never opens.
        expect(cohrt_sync.AuthError, lambda: client(key=KEY + "x").history("c"))
        ok = client()
        token = ok.mint_token("u2").token
        server.stop()
        expect(cohrt_sync.CohrtError, lambda: ok.subscribe("c", user_id="u2"))
    finally:
        for c in clients:
            c.close()
        server.close()
        silent.close()
    secrets = [KEY, token]
    # Not vacuous: urllib3 logged request lines at DEBUG, some with ?key=.
    assert any("/edge/no-session" in t for t in root_at_debug.formatted), "no urllib3 lines"
    assert any("key=***" in t for t in root_at_debug.formatted), "no ?key= line redacted"
    for exc in raised:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        assert not leaks(text, secrets), text
        assert secret_paths(exc, secrets) == [], (type(exc).__name__, secret_paths(exc, secrets))
    for record, text in zip(root_at_debug.records, root_at_debug.formatted):
        extra = repr(record.args) + "".join(str(v) for v in vars(record).values())
        assert not leaks(text + extra, secrets), text[:2000]


# -- the shared redaction, and the server filter's scope -------------------------------------------
SHAPES = [
    ("GET /h?key=abc&channel=c", "GET /h?key=***&channel=c"),
    ("GET /h?%6Bey=abc&%74oken=def", "GET /h?%6Bey=***&%74oken=***"),
    ("GET /h?%6b%65%79=abc", "GET /h?%6b%65%79=***"),
    ("GET /h?KEY=abc&Token=def", "GET /h?KEY=***&Token=***"),
    # Whether a server splits at ";" is its choice: the value runs on.
    ("GET /h?key=abc;x=def", "GET /h?key=***"),
    ("POST /s?channel=c&key=a%26b#frag", "POST /s?channel=c&key=***#frag"),
    ("b'Authorization: Bearer abc\\x01'", "b'Authorization: ***'"),
    ("b'Authorization: Basic dXNlcjpwYXNz\\x02'", "b'Authorization: ***'"),
    ("{'Authorization': 'abc', 'Host': 'x'}", "{'Authorization': '***', 'Host': 'x'}"),
    ("Proxy-Authorization: Digest a=b", "Proxy-Authorization: ***"),
    ("send Authorization: Bearer <key>", "send Authorization: Bearer <key>"),
    ("bearer abc.def", "bearer ***"),
    ("tok eyJhbGciOi.eyJzdWIi.c2ln end", "tok *** end"),
    ("unsigned eyJhbGciOi.eyJzdWIi. end", "unsigned *** end"),
    ("channel=keyboard&monkey=1", "channel=keyboard&monkey=1"),
    ("nothing secret here", "nothing secret here"),
]


@pytest.mark.parametrize("text, want", SHAPES)
def test_credentials_are_redacted_by_shape(text: str, want: str) -> None:
    from cohrt_sync._redact import Redactor

    assert Redactor().redact(text) == want


def test_registered_secrets_are_redacted_however_encoded() -> None:
    from cohrt_sync._redact import Redactor

    r = Redactor([KEY])
    every = "".join(f"%{b:02x}" for b in KEY.encode())
    half = KEY[:5] + every[15:]
    for text in (f"x {KEY} y", f"/edge/{every}", f"/edge/{every.upper()}", f"?c={half}&x=1"):
        clean = r.redact(text)
        assert not leaks(clean, [KEY]) and "***" in clean, (text, clean)
    # Decoding to find the key must not decode a forged line break with it.
    assert r.redact(f"GET /{every}%0D%0AINFO forged") == "GET /***%0D%0AINFO forged"


def _in_process_attack(server: LocalServer, key: str) -> None:
    host, port = server.host, server.port
    _raw(host, port, b"GET / HTTP/1.1\r\nAuthorization: Bearer " + key.encode() + b"\x01\r\n\r\n")
    _raw(host, port, b"GET /x?" + key.encode() + b" y HTTP/1.1\r\n\r\n")


def test_server_filter_covers_running_servers_only_and_leaves_other_loggers_alone(
    root_at_debug: _Everything,
) -> None:
    app_log = logging.getLogger("an.embedding.app")
    watched = [logging.getLogger(n) for n in ("aiohttp.server", "asyncio", "cohrt_sync.server")]
    before = {lg.name: list(lg.filters) for lg in watched}
    late_key = "klate_8d1c4f0a2b6e9d37"
    with LocalServer([KEY]) as one, LocalServer([KEY_2]) as two:
        one.add_key(late_key)
        _in_process_attack(one, KEY)
        _in_process_attack(two, KEY_2)
        _in_process_attack(one, late_key)
        app_log.warning("app record ?key=%s %s", KEY, KEY_2)
        one.stop()
        # Still filtered while the other server runs, for its own key.
        _in_process_attack(two, KEY_2)
    after = {lg.name: list(lg.filters) for lg in watched}
    assert after == before, "the filter must come off when the last server stops"
    server_lines = [t for t in root_at_debug.formatted if not t.startswith("an.embedding.app")]
    # aiohttp logs the error before it answers, so every attack is in by now.
    assert sum("Error handling request" in t for t in server_lines) == 8, server_lines
    for text in server_lines:
        assert not leaks(text, [KEY, KEY_2, late_key]), text
    # The embedding application's own records are its business.
    assert (
        f"app record ?key={KEY} {KEY_2}"
        in root_at_debug.formatted[
            [t.startswith("an.embedding.app") for t in root_at_debug.formatted].index(True)
        ]
    )


def test_a_key_of_an_earlier_run_is_redacted_before_its_first_use(
    root_at_debug: _Everything, tmp_path: Any
) -> None:
    with LocalServer([KEY], data_dir=tmp_path, provision=True):
        pass
    # Restarted without that key: it is still valid, but stored only as a digest.
    with LocalServer([KEY_2], data_dir=tmp_path) as server:
        for path in (f"/edge/{KEY}", f"/edge/realtime/history?channel={KEY}&key={KEY}"):
            requests.get(server.base_url + path, timeout=TIMEOUT)
        marker = "/edge/end-of-test-marker"
        requests.get(server.base_url + marker, timeout=TIMEOUT)
        wait_until(lambda: any(marker in t for t in root_at_debug.formatted), TIMEOUT)
    access = [t for t in root_at_debug.formatted if t.startswith("aiohttp.access")]
    assert len(access) == 3, access
    for text in access:
        assert not leaks(text, [KEY]), text


def test_a_short_key_does_not_garble_logs_or_hide_a_token_from_redaction() -> None:
    """A key ``k`` once turned every ``k`` into ``***``, and a token so garbled
    no longer looked like one, so the rest of it was logged."""
    from cohrt_sync._redact import Redactor

    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJrayJ9.c2lna2tr"
    line = f"GET /edge/realtime?channel=c&tok={token} HTTP/1.1\r\nUpgrade: websocket"
    clean = Redactor(["k"]).redact(line)
    assert token[:20] not in clean and "eyJ" not in clean, clean
    assert "Upgrade: websocket" in clean, clean
