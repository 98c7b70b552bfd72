"""A real server and the real `cohrt-sync` command in a child process, for the CLI's tests."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import pytest
import requests

from cohrt_sync.server import LocalServer

KEY = "k_cli_suite"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(keys=[KEY], provision=True) as srv:
        yield srv


def env_for(base_url: Optional[str], key: str = KEY) -> Dict[str, str]:
    """The environment of a CLI child: this key and server, unbuffered output."""
    env = dict(os.environ, COHESIVITY_KEY=key, PYTHONUNBUFFERED="1")
    env.pop("COHESIVITY_BASE_URL", None)
    if base_url is not None:
        env["COHESIVITY_BASE_URL"] = base_url
    return env


def run(
    *args: str, base_url: Optional[str] = None, key: str = KEY
) -> subprocess.CompletedProcess[str]:
    """Run `cohrt-sync ARGS` to completion (30 s at most)."""
    return subprocess.run(
        [sys.executable, "-m", "cohrt_sync.cli", *args],
        env=env_for(base_url, key),
        capture_output=True,
        text=True,
        timeout=30,
    )


def publish(server: LocalServer, channel: str, data: Any, event: str = "message") -> None:
    """Publish over HTTP as another program would."""
    r = requests.post(
        f"{server.base_url}/edge/realtime",
        params={"key": KEY},
        json={"channel": channel, "data": data, "event": event},
        timeout=10,
    )
    r.raise_for_status()


class Listener:
    """`cohrt-sync listen` as a child process, its stdout read line by line with deadlines."""

    def __init__(self, server: LocalServer, channel: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cohrt_sync.cli", "listen", channel, "--seconds", "60", *args],
            env=env_for(server.base_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[Optional[Dict[str, Any]]] = queue.Queue()
        self.seen: List[Dict[str, Any]] = []
        self.stderr: List[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def until(self, predicate: Any, timeout: float = 15) -> Dict[str, Any]:
        """Read lines until one matches; fail after ``timeout`` seconds or at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching line in {timeout}s; saw {self.seen}") from None
            if item is None:
                raise AssertionError(f"listen exited; saw {self.seen}, stderr {self.stderr}")
            self.seen.append(item)
            if predicate(item):
                return item

    def message(self, event: str, timeout: float = 15) -> Dict[str, Any]:
        """The next printed message of ``event``."""
        return self.until(lambda d: d["type"] == "message" and d["event"] == event, timeout)

    def stop(self, signum: int) -> int:
        """Send ``signum``; return the exit code (10 s at most)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)
