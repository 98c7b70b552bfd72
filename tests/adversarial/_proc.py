"""`cohrt-sync serve` in its own process, for attacks that need one.

Resource limits, RSS and log output are per process: a test that measures
them must not share its process with the server.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import requests

#: How long the server may take to print its listening line.
START_DEADLINE_S = 20.0


def serve_command(*args: str) -> List[str]:
    """The argv of ``cohrt-sync serve ARGS`` with this interpreter."""
    code = "import sys; from cohrt_sync.cli import main; sys.exit(main())"
    return [sys.executable, "-c", code, "serve", *args]


class ServerProcess:
    """``cohrt-sync serve`` as a child process; a context manager.

    Its stdout and stderr go to one file (:attr:`output`), read back with
    :meth:`log_text`.

    :param args: extra ``serve`` arguments (keys, tier, limits, ``--log-level``).
    :param nofile: soft and hard ``RLIMIT_NOFILE`` for the child, when given.
    """

    def __init__(self, args: Sequence[str] = (), *, nofile: Optional[int] = None) -> None:
        self.args = list(args)
        self.nofile = nofile
        self._dir = tempfile.TemporaryDirectory(prefix="cohrt-adv-")
        self.output = Path(self._dir.name) / "server.log"
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.base_url = ""

    def __enter__(self) -> ServerProcess:
        preexec: Optional[Callable[[], None]] = None
        if self.nofile is not None:
            limit = self.nofile

            def preexec() -> None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        out = open(self.output, "wb")
        try:
            self.proc = subprocess.Popen(
                serve_command(
                    "--port", "0", "--data-dir", str(Path(self._dir.name) / "data"), *self.args
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=preexec,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            out.close()
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            m = re.search(r"listening on (http://\S+)", self.log_text())
            if m:
                self.base_url = m.group(1)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise AssertionError(f"cohrt-sync serve did not start; output:\n{self.log_text()}")

    def __exit__(self, *exc: Any) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._dir.cleanup()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def host_port(self) -> tuple:
        """(host, port) of the listening socket."""
        m = re.match(r"http://([^:/]+):(\d+)", self.base_url)
        assert m, self.base_url
        return m.group(1), int(m.group(2))

    def log_text(self) -> str:
        """Everything the server printed so far."""
        try:
            return self.output.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def rss_bytes(self) -> int:
        """The child's resident set size now."""
        with open(f"/proc/{self.pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    def settled_rss(self, polls: int = 30) -> int:
        """The child's RSS once two reads 0.1 s apart differ by under half a MiB
        (or the last read, after ``polls`` of them): a flood's pages are freed
        and returned over a few hundred milliseconds, not at once."""
        last = self.rss_bytes()
        for _ in range(polls):
            time.sleep(0.1)
            now = self.rss_bytes()
            if abs(now - last) < (1 << 19):
                return now
            last = now
        return last

    def open_fds(self) -> int:
        """How many file descriptors the child holds now."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, key: str, timeout: float = 5.0) -> requests.Response:
        """``GET path`` with ``Authorization: Bearer key`` on a fresh connection."""
        return requests.get(
            self.base_url + path,
            headers={"Authorization": f"Bearer {key}", "Connection": "close"},
            timeout=timeout,
        )


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
