"""``cohrt-sync serve --cluster``: one-line errors when it can't work, and
nothing of Redis without it."""

from __future__ import annotations

import socket
import subprocess
import sys

from adversarial._proc import serve_command

SNIPPET_NO_EXTRA = """
import sys
sys.modules["redis"] = None  # as if the [cluster] extra were not installed
from cohrt_sync.cli import main
sys.exit(main(["serve", "--port", "0", "--cluster", "redis://127.0.0.1:6379/0"]))
"""

SNIPPET_ALONE = """
import sys
from cohrt_sync.cli import main
from cohrt_sync.server import LocalServer
with LocalServer(provision=True) as srv:
    pass
assert main(["serve", "--port", "0", "--cluster", "not-redis"]) == 2  # the CLI's own imports
assert not any(m == "redis" or m.startswith("redis.") for m in sys.modules), "redis imported"
"""


def _run(argv: list) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_redis_is_one_line_and_exit_1() -> None:
    done = _run(serve_command("--port", "0", "--cluster", f"redis://127.0.0.1:{_closed_port()}/0"))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach Redis at redis://127.0.0.1:" in lines[0], done.stderr
    assert "start redis-server" in lines[0]


def test_a_url_that_is_not_redis_is_one_line_and_exit_2() -> None:
    done = _run(serve_command("--port", "0", "--cluster", "http://127.0.0.1:6379"))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "cohrt-sync serve: cluster must be a Redis URL such as redis://127.0.0.1:6379/0,"
        " not 'http://127.0.0.1:6379'"
    )


def test_the_missing_extra_is_one_line_naming_it() -> None:
    done = _run([sys.executable, "-c", SNIPPET_NO_EXTRA])
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "cohrt-sync serve: cluster mode needs the cluster extra:"
        " pip install 'cohrt-sync[cluster]'"
    )


def test_a_server_without_cluster_never_imports_redis() -> None:
    done = _run([sys.executable, "-c", SNIPPET_ALONE])
    assert done.returncode == 0, done.stderr


def test_the_redis_password_stays_out_of_the_error() -> None:
    url = f"redis://:hunter2secret@127.0.0.1:{_closed_port()}/0"
    done = _run(serve_command("--port", "0", "--cluster", url))
    assert done.returncode == 1 and "hunter2secret" not in done.stderr + done.stdout
    assert "redis://***@127.0.0.1:" in done.stderr

