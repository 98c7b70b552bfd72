"""A forked child never touches its parent's sockets; its copy of a client knows it, starts afresh.

Each test runs ``forking_parent.py`` in a child process: it subscribes,
forks, and reports what both sides saw. Forks are plain ``os.fork()`` (the
at-fork hooks run: gunicorn, multiprocessing) and the C library's
``fork()`` (no hook runs, ``threading`` is not told: uWSGI's workers).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

from .conftest import KEY

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")

SCRIPT = Path(__file__).with_name("forking_parent.py")
FORKS = ["os", "c"]


def run(server: Any, channel: str, fork: str, child: str) -> Dict[str, Any]:
    env = dict(os.environ, COHESIVITY_KEY=KEY, COHESIVITY_BASE_URL=server.base_url)
    env.update(CHANNEL=channel, FORK=fork, CHILD=child)
    out = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    # Neither side complains: no thread "still running after close()", no traceback.
    assert out.stderr == "", out.stderr
    report: Dict[str, Any] = json.loads(out.stdout)
    return report


@pytest.mark.parametrize("fork", FORKS)
def test_a_child_exiting_leaves_its_parents_channel_alone(
    server: Any, channel_name: str, fork: str
) -> None:
    channel = channel_name
    parent = run(server, channel, fork, "exit")["parent"]
    assert parent["child_status"] == 0
    # The child's sys.exit(0) ran the atexit handler, which closed nothing of
    # the parent's: no close frame, no shutdown() of the shared socket, so the
    # parent's next publish goes out on its first socket and is acked.
    assert parent["published"] == channel
    assert parent["events"] == [["closed", parent["events"][-1][1]]]
    assert parent["reconnects"] == 0
    assert parent["connected"] is True


@pytest.mark.parametrize("fork", FORKS)
def test_a_childs_copy_is_not_connected_and_its_first_use_starts_afresh(
    server: Any, channel_name: str, fork: str
) -> None:
    channel = channel_name
    report = run(server, channel, fork, "use")
    child, parent = report["child"], report["parent"]
    # The child's copy of the parent's channel: not connected, closed here,
    # no hook fired for it, and it says why a publish cannot go out.
    assert child["connected"] is False
    assert child["closed"] is True
    assert child["hooks_in_child"] == []
    assert child["channels"] == 0
    assert child["client_closed"] is False
    assert "is a fork of it: subscribe again in this process" in child["publish"]
    assert child["close_returned"] is True
    if fork == "os":
        assert child["threads"] == []  # the parent's threads do not exist here
    # First use: HTTP on fresh connections (none of the parent's pooled
    # ones), and a channel of its own with its own threads.
    assert child["pooled_before_use"] == []
    assert child["http_publish"] == channel
    assert not set(child["pooled_after_use"]) & set(parent["pooled_at_fork"])
    assert child["own_connected"] is True
    assert child["own_channels"] == 1
    assert len(child["threads_after_subscribe"]) == 3
    # The parent: its socket and its pooled HTTP connection untouched; it saw
    # the child's own channel come and go (closed cleanly at the child's exit).
    assert parent["child_status"] == 0
    assert parent["published"] == channel
    assert parent["reconnects"] == 0
    assert parent["pooled_after"] == parent["pooled_at_fork"]
    assert parent["history_after"] == 2  # the child's HTTP publish, then the parent's
    assert [e for e in parent["events"] if e[0] != "closed"] == [
        ["join", "child"],
        ["leave", "child"],
    ]
