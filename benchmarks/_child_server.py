"""A server under test in a child process: its own RSS, its own interpreter lock.

``ChildServer("ours", keys=[...])`` runs :class:`cohrt_sync.server.LocalServer`
with those keyword arguments; ``ChildServer("bare")`` runs the bare aiohttp
broadcast loop of :mod:`_load`. Either way the child raises its open-file
limit, prints its base URL, and stops when its stdin closes.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from typing import Any, Dict, Optional

_CHILD = """
import json, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
kind, kwargs = json.loads(sys.stdin.readline())
if kind == "ours":
    from cohrt_sync.server import LocalServer
    srv = LocalServer(**kwargs).start()
    print(srv.base_url, flush=True)
    sys.stdin.read()
    srv.close()
else:
    from _load import BareBroadcastServer
    bare = BareBroadcastServer(**kwargs).start()
    print(f"http://127.0.0.1:{bare.port}", flush=True)
    sys.stdin.read()
    bare.stop()
"""


def raise_nofile() -> int:
    """Raise this process's soft open-file limit to its hard limit; the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _status(field: str, pid: Optional[int]) -> str:
    """One field of ``/proc/<pid>/status`` (Linux only)."""
    with open(f"/proc/{pid or 'self'}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split()[1]
    raise RuntimeError(f"no {field} line in /proc/<pid>/status")


def rss_kib(pid: Optional[int] = None) -> float:
    """Resident set size of ``pid`` (this process by default) in KiB."""
    return float(_status("VmRSS", pid))


def thread_count(pid: Optional[int] = None) -> int:
    """How many threads ``pid`` (this process by default) has."""
    return int(_status("Threads", pid))


class ChildServer:
    """``kind`` ("ours" or "bare") started with ``kwargs`` in a child process."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        self.kind = kind
        self.kwargs: Dict[str, Any] = kwargs
        self.base_url = ""
        self._proc: Optional[subprocess.Popen[str]] = None

    def __enter__(self) -> ChildServer:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps([self.kind, self.kwargs]) + "\n")
        self._proc.stdin.flush()
        self.base_url = self._proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.__exit__()
            raise SystemExit(f"the {self.kind} server did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    @property
    def ws_url(self) -> str:
        """The base URL with ``ws://``."""
        return "ws" + self.base_url[len("http") :]

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self._proc is not None
        return self._proc.pid

    def rss_kib(self) -> float:
        """The child's resident set size now, in KiB."""
        return rss_kib(self.pid)
