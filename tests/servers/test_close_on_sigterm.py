"""``cohrt_sync.close_on_sigterm()``: a clean exit where a server leaves SIGTERM at its default.

waitress and ``flask run`` don't handle SIGTERM: without the call the
process dies at once with -15, so no ``on_closed``, no close frame (the
other members see the leave only when the server's ping times out) and no
``atexit``. With it, SIGTERM unwinds the server like Ctrl-C and the
interpreter's exit closes the clients. The app here subscribes at start-up
(one process: the bot is the deployment's only one) and writes its
``on_closed`` to a file. The call never takes SIGTERM from the application
or the server, unless asked.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any, List

import pytest

import cohrt_sync

from .conftest import Watcher, site_env

SERVERS = {
    "waitress": (
        [sys.executable, "-m", "waitress", "--listen=127.0.0.1:0", "site_flask:app"],
        r"Serving on http://127\.0\.0\.1:(\d+)",
    ),
    "flask run": (
        [sys.executable, "-m", "flask", "--app", "site_flask", "run", "--port", "0"],
        r"Running on http://127\.0\.0\.1:(\d+)",
    ),
}


@pytest.mark.parametrize("called", [True, False], ids=["close_on_sigterm", "default"])
@pytest.mark.parametrize("name", list(SERVERS))
def test_sigterm_under_a_server_that_leaves_it_alone(
    name: str, called: bool, api: Any, channel: str, watcher: Watcher, procs: Any, tmp_path: Path
) -> None:
    if name == "waitress":
        pytest.importorskip("waitress", reason="the [test] extra installs waitress")
    events, exits = tmp_path / "events", tmp_path / "exits"
    env = site_env(api, SITE_SUBSCRIBE=channel, SITE_EVENTS=str(events), SITE_EXITS=str(exits))
    if not called:
        env["SITE_NO_CLOSE_ON_SIGTERM"] = "1"
    argv, listening = SERVERS[name]
    server = procs(name.replace(" ", "-"), argv, env)
    server.wait_log(listening)
    pid = int(server.wait_log(r"site ready in (\d+)").group(1))
    watcher.next_event("join", f"site-{pid}")
    rc = server.stop(signal.SIGTERM)
    ended = events.read_text() if events.exists() else ""
    if called:
        # Unwound like Ctrl-C: exit 0, atexit ran and closed the client, so
        # on_closed fired and the socket said goodbye.
        assert rc == 0, server.log()[-3000:]
        assert ended.splitlines() == [f"closed {pid}"]
        assert (exits.read_text() if exits.exists() else "") == f"exit {pid}\n"
        assert "Traceback" not in server.log(), server.log()[-3000:]
    else:
        # Python's default: killed where it stood.
        assert rc == -signal.SIGTERM
        assert ended == "" and not exits.exists()
    watcher.next_event("leave", f"site-{pid}")


@pytest.fixture
def default_sigterm() -> Any:
    """SIGTERM at Python's default for the test, restored afterwards."""
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_close_on_sigterm_keeps_a_handler_someone_set_unless_asked(default_sigterm: Any) -> None:
    def theirs(signum: int, frame: Any) -> None:
        pass

    signal.signal(signal.SIGTERM, theirs)
    assert cohrt_sync.close_on_sigterm() is False
    assert signal.getsignal(signal.SIGTERM) is theirs
    assert cohrt_sync.close_on_sigterm(replace=True) is True
    ours = signal.getsignal(signal.SIGTERM)
    assert ours is not theirs and ours is not signal.SIG_DFL
    assert cohrt_sync.close_on_sigterm() is True  # again: harmless
    assert signal.getsignal(signal.SIGTERM) is ours
    # The handler raises SystemExit(0), and puts the default back first, so
    # a second SIGTERM while closing ends the process at once.
    with pytest.raises(SystemExit) as exited:
        ours(signal.SIGTERM, None)  # type: ignore[operator]
    assert exited.value.code == 0
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_close_on_sigterm_off_the_main_thread_changes_nothing(default_sigterm: Any) -> None:
    answers: List[bool] = []
    worker = threading.Thread(target=lambda: answers.append(cohrt_sync.close_on_sigterm()))
    worker.start()
    worker.join(10)
    assert answers == [False]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
