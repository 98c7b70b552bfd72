"""uWSGI's workers, forked from a master that subscribed, leave the master's socket alone.

In uWSGI's default (non-lazy) mode the app is imported in the master, which
then forks the workers from C: no at-fork hook runs, and ``threading`` in a
worker believes the master's threads alive. A bot started at import (the
wrong way to run one, docs/flask.md) lives in the master, and every worker
inherits its client. Workers here are recycled after three requests each, so
they exit (through ``atexit``) while the master's channel is up. Before,
each exit closed the master's channel from the worker: the master saw
``('disconnected', 'server closed (1000)')`` and reconnected, and the worker
waited 3 s on threads that were never its own.
"""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import Watcher, python_tool, site_env, wait_for
from .test_worker_matrix import TROUBLE, Browser, require


def test_recycled_workers_leave_the_masters_channel_alone(
    api: Any, channel: str, watcher: Watcher, procs: Any, tmp_path: Path
) -> None:
    require("uwsgi")
    events = tmp_path / "events"
    env = site_env(api, SITE_SUBSCRIBE=channel, SITE_EVENTS=str(events))
    server = procs("uwsgi", [
        python_tool("uwsgi"), "--http-socket", "127.0.0.1:0", "--master", "--processes", "2",
        "--enable-threads", "--die-on-term", "--max-requests", "3", "--min-worker-lifetime", "0",
        "--home", sys.prefix,
        "--module", "site_flask:app",
    ], env)  # fmt: skip
    port = server.wait_log(r"bound to TCP address 127\.0\.0\.1:(\d+)").group(1)
    master = int(server.wait_log(r"site ready in (\d+)").group(1))
    watcher.next_event("join", f"site-{master}")
    user = Browser(f"http://127.0.0.1:{port}", keepalive=False)
    wait_for("the app answers", user.answers)
    pids = {user.call("GET", "/stats")["pid"] for _ in range(6)}
    # Six requests, three per worker's life: a worker exited and was forked
    # again from the master, whose channel was up all along.
    wait_for("a worker recycled", lambda: re.search(r"Respawned uWSGI worker", server.log()))
    assert len(pids) >= 2, pids
    user.call("POST", "/login?uid=u1&name=Ann")
    body = {"channel": channel, "data": {"text": "still here"}}
    user.call("POST", "/realtime/publish", json=body)
    assert watcher.next_message("message").data["text"] == "still here"
    seen_before_stop = events.read_text() if events.exists() else ""
    assert "disconnected" not in seen_before_stop, seen_before_stop
    assert watcher.events.empty(), watcher.events.get_nowait()  # nobody left or joined

    server.wait_log(r"\|req: \d+/%d\]" % user.answered)  # no worker busy at the signal
    assert server.stop(signal.SIGTERM) == 0, server.log()[-3000:]
    log = server.log()
    assert not [t for t in TROUBLE if t in log], log[-3000:]
    # No process saw the master's channel drop. uWSGI's master runs no atexit
    # at shutdown, so its channel is never closed cleanly: the socket just
    # goes with the process (docs/flask.md: a bot does not belong there).
    ended = events.read_text() if events.exists() else ""
    assert "disconnected" not in ended and "closed" not in ended, ended
    watcher.next_event("leave", f"site-{master}")


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uWSGI does not run on Windows")
