"""Cluster nodes as real ``cohrt-sync serve --cluster`` child processes, for the tests
that kill, pause or outlive them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, List, Optional

import redis
from adversarial._proc import serve_command

#: How long a node may take to print its listening line.
START_DEADLINE_S = 20.0


class Node:
    """One ``cohrt-sync serve --cluster`` process on a shared data dir.

    :param redis_url: the cluster's Redis.
    :param data_dir: the folder every node of the cluster shares.
    :param args: more ``serve`` arguments (keys, ``--provision``, tier).
    """

    def __init__(self, redis_url: str, data_dir: Path, args: List[str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                serve_command(
                    "--port", "0", "--data-dir", str(data_dir), "--cluster", redis_url, *args
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            m = re.search(r"listening on (http://\S+)", self.output())
            if m:
                self.base_url = m.group(1)
                self.port = int(self.base_url.rsplit(":", 1)[1])
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the node did not start; output:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        """What the node printed so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def kill9(self) -> None:
        """``kill -9``: no close frames, no lease released, nothing flushed."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the process is frozen, as a partitioned node."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGINT and wait (kill at the deadline); idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def owner_port(client: redis.Redis[Any], tenant_id: str) -> Optional[int]:
    """The port of the node holding ``tenant_id``'s lease, or None if nobody does."""
    value = client.get(f"cohrt:lease:{tenant_id}")
    if value is None:
        return None
    node = value.rpartition("|")[0]
    url = client.hget(f"cohrt:node:{node}", "url")
    return int(url.rsplit(":", 1)[1]) if url else None


def wait_for(predicate: Callable[[], Any], timeout: float, what: Any) -> Any:
    """Poll ``predicate`` until truthy; fail naming ``what`` (or what it returns) at
    the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            what = what() if callable(what) else what
            raise AssertionError(f"{what}: not within {timeout}s (last: {value!r})")
        time.sleep(0.05)
