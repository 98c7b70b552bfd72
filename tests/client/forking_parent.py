"""A process that subscribes, forks, and reports what each side saw: run by test_fork.py.

The parent subscribes to ``$CHANNEL`` with a plugin recording its hooks,
then forks. ``$FORK`` says how: ``os`` is ``os.fork()`` (the at-fork hooks
run, as under gunicorn or multiprocessing); ``c`` calls the C library's
``fork()`` with the GIL held, so no at-fork hook runs and ``threading``
still believes the parent's threads alive: what uWSGI's workers see without
``--py-call-osafterfork``. ``$CHILD`` says what the child does before
``sys.exit(0)``: ``exit`` nothing, ``use`` inspects its copy of the client
and uses it (HTTP, then a channel of its own). The child reports on a pipe.

The parent then waits for the child, publishes on its channel and waits for
the ack (the child wrote before that publish, so a close frame or a
``shutdown()`` of the shared socket would be seen first), and prints one
JSON line: both sides' findings.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import threading
import time
from typing import Any, Dict, List

import cohrt_sync

CHANNEL = os.environ["CHANNEL"]


class Recorder:
    def __init__(self) -> None:
        self.events: List[Any] = []

    @cohrt_sync.hookimpl
    def on_disconnected(self, channel: Any, reason: str) -> None:
        self.events.append(["disconnected", reason])

    @cohrt_sync.hookimpl
    def on_reconnected(self, channel: Any, attempts: int, caught_up: int) -> None:
        self.events.append(["reconnected", attempts])

    @cohrt_sync.hookimpl
    def on_join(self, channel: Any, user: Any) -> None:
        self.events.append(["join", user.id])

    @cohrt_sync.hookimpl
    def on_leave(self, channel: Any, user: Any) -> None:
        self.events.append(["leave", user.id])

    @cohrt_sync.hookimpl
    def on_closed(self, channel: Any) -> None:
        self.events.append(["closed", os.getpid()])


def pooled_ports(client: cohrt_sync.Client) -> List[int]:
    """Local ports of the keep-alive connections in the client's HTTP pools."""
    ports = []
    for pool in client._http.session.adapters["http://"].poolmanager.pools._container.values():
        for conn in list(pool.pool.queue):
            if conn is not None and conn.sock is not None:
                ports.append(conn.sock.getsockname()[1])
    return ports


def library_threads() -> List[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("cohrt-sync-"))


def child_uses(client: cohrt_sync.Client, ch: cohrt_sync.Channel, rec: Recorder) -> Dict[str, Any]:
    """In the child: what its copy of the client says, then the first use of it."""
    found: Dict[str, Any] = {
        "connected": ch.connected,
        "closed": ch.closed,
        "channels": len(client.channels),
        "client_closed": client.closed,
        "threads": library_threads(),
        "hooks_in_child": list(rec.events),
    }
    try:
        ch.publish({"from": "child copy"})
        found["publish"] = "sent"
    except cohrt_sync.ChannelClosedError as e:
        found["publish"] = str(e)
    found["close_returned"] = ch.close(timeout=1.0) is None
    found["pooled_before_use"] = pooled_ports(client)
    found["http_publish"] = client.publish(CHANNEL, {"from": "child http"}).channel
    found["pooled_after_use"] = pooled_ports(client)
    own = client.subscribe(CHANNEL, user_id="child")
    found["own_connected"] = own.connected
    found["own_channels"] = len(client.channels)
    found["threads_after_subscribe"] = library_threads()
    return found


def main() -> None:
    rec = Recorder()
    client = cohrt_sync.Client(plugins=[rec])
    ch = client.subscribe(CHANNEL, user_id="parent")
    client.history(CHANNEL)  # a pooled keep-alive connection the child inherits
    inherited_ports = pooled_ports(client)
    read, write = os.pipe()
    if os.environ["FORK"] == "c":
        pid = ctypes.PyDLL(None).fork()
    else:
        pid = os.fork()
    if pid == 0:
        os.close(read)
        report: Dict[str, Any] = {}
        if os.environ["CHILD"] == "use":
            report = child_uses(client, ch, rec)
        os.write(write, json.dumps(report).encode())
        os.close(write)
        sys.exit(0)  # the interpreter's exit: atexit handlers run
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = json.loads(pipe.read() or b"{}")
    _, status = os.waitpid(pid, 0)
    started = time.monotonic()
    try:
        ack = ch.publish({"from": "parent after the child"}, timeout=5.0)
        published = ack.channel
    except cohrt_sync.CohrtError as e:
        published = f"{type(e).__name__}: {e}"
    parent = {
        "pooled_at_fork": inherited_ports,
        "history_after": len(client.history(CHANNEL)),
        "pooled_after": pooled_ports(client),
        "child_status": status,
        "published": published,
        "round_trip_s": round(time.monotonic() - started, 3),
        "connected": ch.connected,
        "reconnects": ch.reconnects,
        "events": rec.events,
        "threads": library_threads(),
    }
    client.close()
    print(json.dumps({"parent": parent, "child": child}), flush=True)


if __name__ == "__main__":
    main()
