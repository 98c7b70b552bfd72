"""`cohrt-sync serve` as a subprocess: prints its base URL when ready, serves, stops (DESIGN §4)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.server._wire import Api, Sock, free_port, uniq

KEY = "kcli_6a5b4c3d2e1f"


def _serve_cmd(*args: str) -> list:
    script = Path(sys.executable).with_name("cohrt-sync")
    if script.exists():
        return [str(script), "serve", *args]
    code = "import sys; from cohrt_sync.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, "serve", *args]


def _lines(stream: object, out: queue.Queue) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        out.put(line)
    out.put(None)


def _serve(*args: str) -> tuple:
    """Start ``cohrt-sync serve``; return the process and a queue of its output lines."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        _serve_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    return proc, lines


def _wait_for(lines: queue.Queue, pattern: str, deadline: float) -> tuple:
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m, seen
    raise AssertionError(f"no line matching {pattern!r} in time; output so far: {seen}")


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            raise AssertionError("cohrt-sync serve did not stop on SIGINT within 10 s") from None
    return int(proc.returncode)


def test_serve_prints_base_url_serves_and_stops(tmp_path: Path) -> None:
    port = free_port()
    proc, lines = _serve(
        "--host", "127.0.0.1", "--port", str(port), "--key", KEY, "--provision",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    try:
        m, _ = _wait_for(lines, rf"http://127\.0\.0\.1:{port}\b", time.monotonic() + 20)
        base = m.group(0)
        api = Api(base, KEY)
        ch = uniq()
        with Sock(base, api.token("alice"), ch) as s:  # provisioned by --provision
            api.publish_ok(ch, {"via": "cli"})
            assert s.message()["data"] == {"via": "cli"}
        assert [m["data"] for m in api.history_ok(ch)] == [{"via": "cli"}]
    finally:
        code = _stop(proc)
    assert code in (0, -signal.SIGINT, 130), code
    # the data dir kept the tenant's database
    assert any(tmp_path.iterdir())


def test_serve_without_key_generates_and_prints_one(tmp_path: Path) -> None:
    port = free_port()
    proc, lines = _serve("--port", str(port), "--provision", "--data-dir", str(tmp_path))
    try:
        m, seen = _wait_for(lines, rf"http://127\.0\.0\.1:{port}\b", time.monotonic() + 20)
        base = m.group(0)
        # the generated key is printed somewhere in the first lines; find the one that works
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                break
            if line is None:
                break
            seen.append(line)
        candidates = {w for line in seen for w in re.findall(r"[A-Za-z0-9_\-]{16,}", line)}
        working = [k for k in candidates if Api(base, k).session_resp().status_code == 200]
        assert working, f"no printed word is a working key: {seen}"
    finally:
        _stop(proc)
