"""`listen` tells reconnections, exits as shells expect; `history` draws progress only on a tty."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

from cohrt_sync.server import LocalServer

from .conftest import Listener, env_for, publish, run


def test_listen_says_when_it_reconnected_and_what_it_caught_up(server: LocalServer) -> None:
    listener = Listener(server, "cli:reconnect")
    try:
        listener.until(lambda d: d["type"] == "subscribed")
        assert server.drop_channel("cli:reconnect") == 1
        publish(server, "cli:reconnect", "while away")
        back = listener.until(lambda d: d["type"] == "reconnected")
        assert back["attempts"] >= 1 and back["caught_up"] in (0, 1)
        if not any(d.get("data") == "while away" for d in listener.seen):
            listener.until(lambda d: d.get("data") == "while away")
        # A later message: any duplicate of the caught-up one would come before it.
        publish(server, "cli:reconnect", "after")
        listener.until(lambda d: d.get("data") == "after")
    finally:
        assert listener.stop(signal.SIGINT) == 130
    got = [d for d in listener.seen if d.get("data") == "while away"]
    assert len(got) == 1, listener.seen
    assert [d["type"] for d in listener.seen if d["type"].endswith("connected")] == [
        "disconnected",
        "reconnected",
    ]
    said = "".join(listener.stderr)
    assert "disconnected from cli:reconnect" in said
    assert (
        f"reconnected to cli:reconnect after {back['attempts']} attempt(s);"
        f" caught up {back['caught_up']} missed message(s)" in said
    )


def test_listen_exits_130_on_ctrl_c_and_143_on_sigterm(server: LocalServer) -> None:
    for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        listener = Listener(server, "cli:signals")
        listener.until(lambda d: d["type"] == "subscribed")
        assert listener.stop(signum) == code
        assert "Traceback" not in "".join(listener.stderr)


def test_history_into_a_pipe_writes_no_progress(server: LocalServer) -> None:
    for i in range(3):
        publish(server, "cli:piped", i)
    r = run("history", "cli:piped", base_url=server.base_url)
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "\r" not in r.stdout
    last = json.loads(r.stdout.splitlines()[-1])["id"]
    assert r.stderr == f"3 messages exported from cli:piped (last id {last})\n"


def test_history_on_a_terminal_draws_a_progress_bar_on_stderr(server: LocalServer) -> None:
    for i in range(120):
        publish(server, "cli:bar", i)
    parent, child = pty.openpty()
    # A terminal 100 columns wide (a new pty has 0, and tqdm sizes its bar to it).
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cohrt_sync.cli", "history", "cli:bar"],
        env=env_for(server.base_url), stdout=subprocess.PIPE, stderr=child,
    )  # fmt: skip
    os.close(child)
    err = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready, _, _ = select.select([parent], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(parent, 4096)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            err += chunk
        elif proc.poll() is not None:
            break
    os.close(parent)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert len(out.splitlines()) == 120
    text = err.decode()
    # tqdm's bar: the channel, the count and a rate, redrawn in place.
    assert "cli:bar: 120 msg" in text and "msg/s]" in text and "\r" in text, text
    assert "120 messages exported from cli:bar" in text
