"""A worker's ``run_forever()`` under SIGTERM (systemd, Docker, Kubernetes), in child processes.

Where the library owns the main thread, SIGTERM closes like Ctrl-C: every
channel's ``on_closed`` fires, the socket closes (others see the worker
leave), and the process exits 0. An application that owns SIGTERM keeps its
handler, and stops the client itself (docs/lifecycle.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from typing import Any, List

from .conftest import KEY, Recorder, wait_until

# The child: a worker with a plugin that prints its hooks, then ``MODE``'s lifecycle.
WORKER = textwrap.dedent(
    """
    import os, signal, sys, threading
    import cohrt_sync

    class Say:
        @cohrt_sync.hookimpl
        def on_closed(self, channel):
            print("on_closed", channel.name, flush=True)

    client = cohrt_sync.Client(plugins=[Say()])
    client.subscribe(os.environ["CHANNEL"], user_id="worker")
    mode = os.environ["MODE"]
    if mode == "library":
        # "ready" once run_forever() has installed its handler, not before.
        def announce():
            for _ in range(1000):  # 5 s at most
                if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                    break
                threading.Event().wait(0.005)
            print("ready", flush=True)
        threading.Thread(target=announce, name="announce", daemon=True).start()
        client.run_forever()
    elif mode == "app-handler":
        # The application's own handler stays; it stops the client from a thread
        # (a signal handler must not block on locks the main thread may hold).
        def on_term(signum, frame):
            print("app handler", flush=True)
            threading.Thread(target=client.close, name="closer").start()
        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        client.run_forever()
    elif mode == "off-main-thread":
        worker = threading.Thread(target=client.run_forever, name="worker")
        worker.start()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print("ready", flush=True)
        while not stop.wait(0.1):
            pass
        client.close()
        worker.join(10)
        print("worker alive" if worker.is_alive() else "worker joined", flush=True)
    print("exit", flush=True)
    """
)


def run_worker(server: Any, make_client: Any, channel: str, mode: str) -> List[str]:
    """Start the worker, SIGTERM it once it is in presence; its output lines (rc checked 0)."""
    observer = Recorder()
    watcher = make_client(server, plugins=[observer])
    watcher.subscribe(channel, user_id="observer")
    env = dict(os.environ, COHESIVITY_KEY=KEY, COHESIVITY_BASE_URL=server.base_url)
    env.update(CHANNEL=channel, MODE=mode, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        wait_until(lambda: any(u.id == "worker" for _, _, u in observer.of("join")))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, f"rc {proc.returncode}; stderr: {err}"
    assert "Traceback" not in err, err
    # The socket was closed, not left to time out: the others see the worker leave.
    wait_until(lambda: any(e[2].id == "worker" for e in observer.of("leave")), timeout=5)
    return out.splitlines()


def test_sigterm_closes_like_ctrl_c_where_the_library_owns_the_main_thread(
    server: Any, make_client: Any, channel_name: str
) -> None:
    lines = run_worker(server, make_client, channel_name, "library")
    assert lines == [f"on_closed {channel_name}", "exit"]


def test_an_applications_own_sigterm_handler_is_kept(
    server: Any, make_client: Any, channel_name: str
) -> None:
    lines = run_worker(server, make_client, channel_name, "app-handler")
    assert lines == ["app handler", f"on_closed {channel_name}", "exit"]


def test_run_forever_off_the_main_thread_stops_on_close(
    server: Any, make_client: Any, channel_name: str
) -> None:
    lines = run_worker(server, make_client, channel_name, "off-main-thread")
    assert lines == [f"on_closed {channel_name}", "worker joined", "exit"]


def test_run_forever_restores_the_previous_sigterm_handler(
    server: Any, make_client: Any, channel_name: str
) -> None:
    import threading

    client = make_client(server)
    client.subscribe(channel_name, user_id="u")
    before = signal.getsignal(signal.SIGTERM)
    threading.Timer(0.2, client.close).start()
    client.run_forever()
    assert client.closed and signal.getsignal(signal.SIGTERM) is before
