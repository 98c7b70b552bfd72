"""``flask cohrt listen``: the app's one bot, in a process of its own, as a user runs it.

The app is the example chat (``examples/flask_chat``), found by Flask's
``--app``; the bot's plugin is the installed ``cohrt-sync-echo``. Real child
processes and a real local server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

from flask_test_app import KEY

import cohrt_sync
from tests.bot_process import DEADLINE, BotProcess, Watcher, next_event

ROOT = Path(__file__).resolve().parents[2]
APP = "examples/flask_chat/app:create_app"


def flask_env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COHRT_", "COHESIVITY_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def flask_cmd(*args: str) -> List[str]:
    return [sys.executable, "-m", "flask", "--app", APP, *args]


def start_bot(base_url: str, *args: str) -> BotProcess:
    """``flask cohrt listen`` with ``args``, against ``base_url``."""
    return BotProcess(
        flask_cmd("cohrt", "listen", *args), ROOT, flask_env(COHRT_KEY=KEY, COHRT_BASE_URL=base_url)
    )


def test_flask_cohrt_listen_runs_a_plugin_until_sigterm_then_leaves_cleanly(
    server: Any, channel: str
) -> None:
    watcher = Watcher()
    with cohrt_sync.Client(key=KEY, base_url=server.base_url, plugins=[watcher]) as direct:
        ch = direct.subscribe(channel, user_id="watcher")
        bot = start_bot(server.base_url, channel, "--plugin", "echo", "--user-id", "bot-1", "-v")
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
