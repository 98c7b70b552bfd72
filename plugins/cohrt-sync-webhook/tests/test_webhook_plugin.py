"""cohrt-sync-webhook end to end: a real LocalServer, a real HTTP receiver on loopback."""

from __future__ import annotations

import http.server
import json
import threading
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any, Iterator, List, Optional

import pytest
from cohrt_sync_webhook import SIGNATURE_HEADER, Webhook, sign, verify

import cohrt_sync

SECRET = "whsec_test_shared"
FAST = cohrt_sync.Retry(total=3, backoff_factor=0.02, backoff_max=0.1, budget=5.0,
                        status_forcelist={500, 503})




class Receiver:
    """A real HTTP server recording each POST; ``answers`` scripts the statuses it replies."""

    def __init__(self) -> None:
        self.requests: List[Any] = []
        self.answers: List[int] = []
        #: Monotonic arrival time of each request.
        self.arrived: List[float] = []
        #: Sent with every answer that is not a 2xx, when set.
        self.retry_after: Optional[str] = None
        self.hold = threading.Event()
        self.hold.set()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.hold.wait(10)
                status = outer.answers.pop(0) if outer.answers else 200
                outer.arrived.append(time.monotonic())
                outer.requests.append((dict(self.headers), body, status))
                self.send_response(status)
                if outer.retry_after is not None and not 200 <= status < 300:
                    self.send_header("Retry-After", outer.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       name="test-receiver")
        self.thread.start()

    def delivered(self) -> List[Any]:
        return [json.loads(body) for _, body, status in self.requests if status == 200]

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def webhook_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("cohrt-sync-webhook-")]


def test_entry_point_webhook_posts_signed_events_and_stops_with_the_client(
    cohrt_server: Any, cohrt_key: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
    wait_for: Any,
) -> None:
    monkeypatch.setenv("COHRT_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("COHRT_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("COHRT_WEBHOOK_KINDS", "message,join")
    base = dict(key=cohrt_key, base_url=cohrt_server.base_url)
    with cohrt_sync.Client(**base, entry_points=["webhook"]) as bridge, \
            cohrt_sync.Client(**base) as app:
        bridge.subscribe("chat:hooked", user_id="bridge")
        ann = app.subscribe("chat:hooked", user_id="ann", name="Ann")
        for n in range(3):
            ann.publish({"n": n})
        wait_for(lambda: len(receiver.delivered()) == 4)  # Ann's join, then her 3 messages
        assert webhook_threads()
    assert not webhook_threads()  # stopped and joined by the client's close
    events = receiver.delivered()
    assert [e["kind"] for e in events] == ["join", "message", "message", "message"]
    assert events[0]["user"] == {"id": "ann", "name": "Ann"}
    assert [e["message"]["data"] for e in events[1:]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    for headers, body, _ in receiver.requests:
        assert verify(SECRET, body, headers[SIGNATURE_HEADER])
        assert not verify("wrong", body, headers[SIGNATURE_HEADER])
        assert not verify(SECRET, body + b" ", headers[SIGNATURE_HEADER])
        assert headers["Cohrt-Delivery"] == json.loads(body)["id"]
        assert SECRET not in json.dumps(headers)


def test_retries_then_dead_letters_what_still_fails(
    cohrt_server: Any, cohrt_key: str, receiver: Receiver, tmp_path: Path, wait_for: Any
) -> None:
    dead = tmp_path / "dead.jsonl"
    hook = Webhook(receiver.url, SECRET, dead_letter=dead, retry=FAST)
    receiver.answers = [503, 500, 200, 400]  # 1st: two retries then ok; 2nd: refused at once
    with cohrt_sync.Client(key=cohrt_key, base_url=cohrt_server.base_url,
                           plugins=[hook]) as client:
        ch = client.subscribe("chat:retried", user_id="bridge")
        ch.publish({"n": 1})
        wait_for(lambda: len(receiver.requests) == 3)
        ch.publish({"n": 2})
        wait_for(dead.exists)
    assert [s for _, _, s in receiver.requests] == [503, 500, 200, 400]
    bodies = {body for _, body, _ in receiver.requests[:3]}
    assert len(bodies) == 1  # the same delivery retried, freshly signed each time
    letters = [json.loads(x) for x in dead.read_text().splitlines()]
    assert [(d["error"], d["attempts"], d["payload"]["message"]["data"]) for d in letters] == [
        ("HTTP 400", 1, {"n": 2})
    ]
    # The receiver is fixed: the dead letters go out again.
    assert hook.redeliver() == 1
    wait_for(lambda: [e["message"]["data"] for e in receiver.delivered()] == [{"n": 1}, {"n": 2}])
    hook.close()
    assert not dead.exists()


def test_an_http_date_retry_after_is_honoured(
    cohrt_server: Any, cohrt_key: str, receiver: Receiver, wait_for: Any
) -> None:
    hook = Webhook(receiver.url, SECRET, retry=FAST)
    receiver.answers = [503, 200]
    # Two seconds ahead, at the header's one-second resolution: a wait of 1 to 2 s,
    # where FAST's own backoff is 20 ms.
    receiver.retry_after = formatdate(time.time() + 2, usegmt=True)
    with cohrt_sync.Client(key=cohrt_key, base_url=cohrt_server.base_url,
                           plugins=[hook]) as client:
        ch = client.subscribe("chat:retry-after-date", user_id="bridge")
        ch.publish({"n": 1})
        wait_for(lambda: len(receiver.delivered()) == 1)
    assert receiver.arrived[1] - receiver.arrived[0] >= 0.9
    hook.close()


def test_a_stuck_endpoint_never_blocks_the_channel_and_close_keeps_its_deadline(
    cohrt_server: Any, cohrt_key: str, receiver: Receiver, tmp_path: Path, wait_for: Any
) -> None:
    dead = tmp_path / "dead.jsonl"
    hook = Webhook(receiver.url, SECRET, dead_letter=dead, retry=FAST, close_timeout=0.5,
                   timeout=(1.0, 3.0))
    receiver.hold.clear()  # the endpoint accepts and never answers (until released)
    seen: List[int] = []

    class After:
        @cohrt_sync.hookimpl(trylast=True)
        def on_message(self, message: cohrt_sync.Message) -> None:
            seen.append(message.data["n"])

    client = cohrt_sync.Client(key=cohrt_key, base_url=cohrt_server.base_url,
                               plugins=[hook, After()])
    ch = client.subscribe("chat:stuck", user_id="bridge")
    for n in range(20):
        client.publish("chat:stuck", {"n": n})
    wait_for(lambda: seen == list(range(20)), timeout=5)  # hooks ran while the POST hangs
    started = time.monotonic()
    ch.close(timeout=3.0)
    took = time.monotonic() - started
    receiver.hold.set()
    client.close()
    assert took < 2.0, took
    wait_for(lambda: not webhook_threads(), timeout=5)
    # One delivery was in flight when the deadline hit; the rest were dead-lettered unsent.
    letters = [json.loads(x) for x in dead.read_text().splitlines()]
    assert len(letters) >= 18
    assert all(d["error"] == "not sent: the webhook was closed first" for d in letters[-18:])


def test_configuration_errors_are_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="COHRT_WEBHOOK_URL and COHRT_WEBHOOK_SECRET"):
        Webhook.from_env({"COHRT_WEBHOOK_URL": "http://127.0.0.1:9/x"})
    with pytest.raises(ValueError, match="http:// or https://"):
        Webhook("127.0.0.1:9/x", SECRET)
    with pytest.raises(ValueError, match="unknown webhook kinds"):
        Webhook("http://127.0.0.1:9/x", SECRET, kinds=["mesage"])
    assert SECRET not in repr(Webhook("http://127.0.0.1:9/x", SECRET))
    monkeypatch.delenv("COHRT_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("COHRT_WEBHOOK_SECRET", raising=False)


def test_signature_checks_the_timestamp_window() -> None:
    body = b'{"kind":"message"}'
    header = sign(SECRET, body, 1_700_000_000)
    assert verify(SECRET, body, header, now=1_700_000_100)
    assert not verify(SECRET, body, header, now=1_700_000_400)  # older than 300 s: a replay
    assert not verify(SECRET, body, None)
    assert not verify(SECRET, body, "t=abc,v1=00")
    other: Optional[str] = header.replace("t=1700000000", "t=1700000099")
    assert not verify(SECRET, body, other, now=1_700_000_100)
