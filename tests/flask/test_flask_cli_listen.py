"""``flask cohrt listen``: the app's one bot, in a process of its own, as a user runs it.

The app is the example chat (``examples/flask_chat``), found by Flask's
``--app``; the bot's plugin is the installed ``cohrt-sync-echo``. Real child
processes and a real local server.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from flask_test_app import KEY

import cohrt_sync

ROOT = Path(__file__).resolve().parents[2]
APP = "examples/flask_chat/app:create_app"
DEADLINE = 20.0


def flask_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COHRT_", "COHESIVITY_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def flask_cmd(*args: str) -> List[str]:
    return [sys.executable, "-m", "flask", "--app", APP, *args]


class Bot:
    """``flask cohrt listen`` in a child process; its stdout read by a thread."""

    def __init__(self, base_url: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            flask_cmd("cohrt", "listen", *args),
            cwd=ROOT,
            env=flask_env(COHRT_KEY=KEY, COHRT_BASE_URL=base_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name="bot-stdout").start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def line(self) -> Dict[str, Any]:
        try:
            return json.loads(self.lines.get(timeout=DEADLINE))  # type: ignore[no-any-return]
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(self.proc.communicate(timeout=10)[1]) from None

    def stop(self, signum: int) -> int:
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(DEADLINE)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


class Watcher:
    """What a second member of the channel sees."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Any] = queue.Queue()
        self.left: queue.Queue[Any] = queue.Queue()

    @cohrt_sync.hookimpl
    def on_message(self, channel: Any, message: Any) -> None:
        self.messages.put(message)

    @cohrt_sync.hookimpl
    def on_leave(self, channel: Any, user: Any) -> None:
        self.left.put(user)


def next_event(q: queue.Queue[Any], event: str) -> Optional[Any]:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        try:
            item = q.get(timeout=max(0.01, end - time.monotonic()))
        except queue.Empty:
            return None
        if item.event == event:
            return item
    return None


def test_flask_cohrt_listen_runs_a_plugin_until_sigterm_then_leaves_cleanly(
    server: Any, channel: str
) -> None:
    watcher = Watcher()
    with cohrt_sync.Client(key=KEY, base_url=server.base_url, plugins=[watcher]) as direct:
        ch = direct.subscribe(channel, user_id="watcher")
        bot = Bot(server.base_url, channel, "--plugin", "echo", "--user-id", "bot-1", "-v")
        try:
            first = bot.line()
            assert first["type"] == "subscribed" and first["channel"] == channel
            assert "bot-1" in [u["id"] for u in first["presence"]]
            ch.publish({"ping": 1}, event="echo_request")
            echo = next_event(watcher.messages, "echo")
            assert echo is not None and echo.data == {"echo": {"ping": 1}}
            # -v: the bot printed the request it answered, as a JSON line.
            seen = bot.line()
            while seen.get("type") != "message":
                seen = bot.line()
            assert seen["event"] == "echo_request" and seen["data"] == {"ping": 1}
        finally:
            rc = bot.stop(signal.SIGTERM)
        # The client was closed: exit 0, and the bot's socket said goodbye.
        assert rc == 0, bot.proc.stderr.read() if bot.proc.stderr else ""
        assert watcher.left.get(timeout=DEADLINE).id == "bot-1"
        ch.close()


def test_flask_cohrt_listen_errors_are_one_line(server: Any) -> None:
    unknown = subprocess.run(
        flask_cmd("cohrt", "listen", "chat:x", "--plugin", "ecko"),
        cwd=ROOT, env=flask_env(COHRT_KEY=KEY, COHRT_BASE_URL=server.base_url),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("Error: ") and "'ecko'" in unknown.stderr
    assert unknown.stderr.strip().count("\n") == 0, unknown.stderr
    no_key = subprocess.run(
        flask_cmd("cohrt", "listen", "chat:x"),
        cwd=ROOT, env=flask_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert no_key.returncode == 1
    assert no_key.stderr.strip() == (
        "Error: realtime is not configured: set COHRT_KEY in the app config or the environment"
    )


def test_flask_lists_the_cohrt_commands() -> None:
    out = subprocess.run(
        flask_cmd("cohrt", "--help"), cwd=ROOT, env=flask_env(),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "listen" in out.stdout
