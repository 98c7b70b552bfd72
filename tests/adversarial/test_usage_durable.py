"""Hard caps survive a crash: usage is on disk before what it counts is answered.

A child server is killed with SIGKILL mid-stream and restarted on the same
data dir. Publishes are counted in the tenant's database, in the transaction
that stores them. The ephemeral tier's 25,000-publish lifetime cap is reached
quickly by writing the count the tenant has already used into the state
database (``server.sqlite3``) before the server starts, as an older server of
the same data dir would have left it: the tenant's database, which holds no
count yet, takes it over. The hidden ``serve --clock-offset SECONDS`` moves a
child server's clock, so the month of a monthly cap turns without waiting.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import struct
import time
from pathlib import Path
from typing import Dict, List, Tuple

import requests
import websocket

from cohrt_sync.server.limits import PAUSE_CLOSE_CODE, PUBLISH, TIERS
from tests.cli.test_cli_tenant import tenant

from ._proc import ServerProcess

KEY = "ks_usage_durable_1f2e3d"
TENANT = "t_" + hashlib.sha256(KEY.encode()).hexdigest()[:20]
CAP = TIERS["ephemeral"].lifetime[PUBLISH]
#: Publishes left under the cap once the preloaded count is in place.
LEFT = 5_000


def _serve(data: Path, *args: str) -> ServerProcess:
    return ServerProcess(["--data-dir", str(data), "--key", KEY, "--provision", *args])


def _set_counters(data: Path, counters: Dict[str, int]) -> None:
    with sqlite3.connect(str(data / "server.sqlite3")) as db:
        db.execute("UPDATE tenants SET counters = ? WHERE id = ?", (json.dumps(counters), TENANT))


def _counters(data: Path) -> Dict[str, int]:
    with sqlite3.connect(str(data / "server.sqlite3")) as db:
        row = db.execute("SELECT counters FROM tenants WHERE id = ?", (TENANT,)).fetchone()
    return dict(json.loads(row[0]))


def _publishes_counted(data: Path) -> int:
    """The tenant's durable publish count of its current lifetime."""
    db = sqlite3.connect(str(data / "tenants" / f"{TENANT}.sqlite3"))
    try:
        row = db.execute(
            "SELECT n FROM _cohrt_usage WHERE bucket = ?", ("life0:" + PUBLISH,)
        ).fetchone()
    finally:
        db.close()
    return int(row[0]) if row else 0


def _rows(data: Path) -> int:
    db = sqlite3.connect(str(data / "tenants" / f"{TENANT}.sqlite3"))
    try:
        return int(db.execute("SELECT count(*) FROM realtime_messages").fetchone()[0])
    finally:
        db.close()


def _socket(srv: ServerProcess) -> websocket.WebSocket:
    token = requests.post(
        srv.base_url + "/edge/realtime/token",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"user_id": "u"},
        timeout=5,
    ).json()["token"]
    ws = websocket.create_connection(
        srv.base_url.replace("http", "ws", 1) + f"/edge/realtime?channel=c&token={token}",
        timeout=10,
    )
    for _ in range(2):  # connected, subscribed
        ws.recv()
    return ws


def _publish(ws: websocket.WebSocket, n: int) -> None:
    try:
        for i in range(n):
            ws.send('{"action":"publish","data":{"i":%d}}' % i)
    except (websocket.WebSocketException, OSError):
        pass  # the server closed the socket: the tenant is paused


def _read_answers(ws: websocket.WebSocket, n: int) -> Tuple[int, int]:
    """(acks, errors) among the next ``n`` answers; stops early if the socket ends."""
    acks = errors = 0
    try:
        while acks + errors < n:
            frame = ws.recv()
            if '"action":"published"' in frame:
                acks += 1
            elif frame.startswith('{"error"'):
                errors += 1
    except (websocket.WebSocketException, OSError):
        pass
    return acks, errors


def _replies_then_close(ws: websocket.WebSocket) -> Tuple[List[str], int]:
    """The replies to this socket's publishes in order, and the close code that ends them."""
    replies: List[str] = []
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return replies, struct.unpack("!H", frame.data[:2])[0]
        text = frame.data.decode()
        if '"action":"published"' in text:
            replies.append("published")
        elif text.startswith('{"error"'):
            replies.append(json.loads(text)["error"])


def test_lifetime_count_is_exact_across_a_graceful_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    live = '{"action":"publish","data":1,"persist":false}'
    with _serve(data, "--tier", "ephemeral") as srv:
        ws = _socket(srv)
        sent = 0
        while sent < CAP - 10:  # pipelined in batches, each batch's acks awaited
            batch = min(1_000, CAP - 10 - sent)
            for _ in range(batch):
                ws.send(live)
            assert _read_answers(ws, batch) == (batch, 0)
            sent += batch
        ws.close()
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=15) == 0
    assert _publishes_counted(data) == CAP - 10

    with _serve(data, "--tier", "ephemeral") as srv:
        ws = _socket(srv)
        ws.settimeout(10)
        for _ in range(20):
            ws.send(live)
        replies, code = _replies_then_close(ws)
        ws.close()
    # Exactly the 10 left are published; the one that tips the pause and every
    # later one get their error frame before the close, in order.
    assert replies[:10] == ["published"] * 10, replies
    assert len(replies) == 20 and all("paused" in r for r in replies[10:]), replies
    assert code == PAUSE_CLOSE_CODE
    assert _publishes_counted(data) == CAP


def test_lifetime_cap_holds_across_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with _serve(data, "--tier", "ephemeral"):
        pass  # creates the tenant and its database
    used = CAP - LEFT
    _set_counters(data, {"life:" + PUBLISH: used})

    with _serve(data, "--tier", "ephemeral") as srv:
        ws = _socket(srv)
        _publish(ws, LEFT)
        acked, _ = _read_answers(ws, 300)
        assert srv.proc is not None
        srv.proc.kill()  # mid-stream: most are still in flight
        srv.proc.wait(timeout=10)
        late, _ = _read_answers(ws, LEFT)  # acks already on the wire
        acked += late
        ws.close()
    counted = _publishes_counted(data) - used
    rows = _rows(data)
    # Every acknowledged publish is counted, and a row is stored only with its count.
    assert acked <= rows == counted, (acked, rows, counted)
    assert acked < LEFT

    with _serve(data, "--tier", "ephemeral") as srv:
        ws = _socket(srv)
        _publish(ws, LEFT)
        acked_again, _ = _read_answers(ws, LEFT)
        ws.close()
    with sqlite3.connect(str(data / "server.sqlite3")) as db:
        (paused,) = db.execute("SELECT paused FROM tenants WHERE id = ?", (TENANT,)).fetchone()
    assert paused  # the cap was reached in the second run
    total = _rows(data)
    assert used + total <= CAP, (used, total)
    assert total >= acked + acked_again
    assert _publishes_counted(data) == used + total
    assert _counters(data)["life:" + PUBLISH] <= CAP


def test_clock_offset_turns_the_month_of_a_monthly_cap(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with _serve(data, "--tier", "free"):
        pass
    cap = TIERS["free"].monthly[PUBLISH]
    this_month = int(time.strftime("%Y%m", time.gmtime()))
    _set_counters(data, {"month_of": this_month, "month:" + PUBLISH: cap})

    def publish(srv: ServerProcess) -> requests.Response:
        return requests.post(
            srv.base_url + "/edge/realtime",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"channel": "c", "data": 1},
            timeout=5,
        )

    with _serve(data, "--tier", "free") as srv:
        refused = publish(srv)
        assert refused.status_code == 429
        wait = int(refused.headers["Retry-After"])
    with _serve(data, "--tier", "free", "--clock-offset", str(wait + 1)) as srv:
        assert publish(srv).status_code == 200
    assert _counters(data)["month:" + PUBLISH] == 1


def test_an_unpause_starts_a_lifetime_that_restarts_keep(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with _serve(data, "--tier", "ephemeral"):
        pass
    _set_counters(data, {"life:" + PUBLISH: CAP})

    def publish(srv: ServerProcess) -> int:
        return requests.post(
            srv.base_url + "/edge/realtime",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"channel": "c", "data": 1, "persist": True},
            timeout=5,
        ).status_code

    with _serve(data, "--tier", "ephemeral") as srv:
        assert publish(srv) == 403  # the count carried over reaches the cap
    unpause = tenant("unpause", KEY, "--data-dir", str(data))
    assert unpause.returncode == 0, unpause.stderr
    with _serve(data, "--tier", "ephemeral") as srv:
        assert publish(srv) == 200
    with _serve(data, "--tier", "ephemeral") as srv:
        assert publish(srv) == 200  # the old lifetime's count did not come back
    db = sqlite3.connect(str(data / "tenants" / f"{TENANT}.sqlite3"))
    try:
        buckets = dict(db.execute("SELECT bucket, n FROM _cohrt_usage WHERE bucket LIKE 'life%'"))
    finally:
        db.close()
    assert buckets == {"life0:" + PUBLISH: CAP, "life1:" + PUBLISH: 2}
