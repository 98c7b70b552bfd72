"""Fixtures for the real-server tests: a local API server, child processes with logs, a watcher.

Every web server, and every bot, is a child process whose output goes to a
file (a pipe nobody reads could fill and stall it); the tests read the
file. Servers bind port 0 and say in their log which port they got.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import queue
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import pytest

import cohrt_sync

server_mod = pytest.importorskip("cohrt_sync.server", reason="needs the [server] extra")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
#: The Django test project's folder (its manage.py, and the package ``project``).
DJANGO_DIR = ROOT / "tests" / "django_app"
KEY = "k_servers_s3cr3t_value"
#: How long a server or a bot may take to start, or to stop after its signal.
DEADLINE = 15.0

_counter = itertools.count()


@pytest.fixture(scope="session")
def api() -> Iterator[Any]:
    """The local API server every web server and bot of these tests talks to."""
    srv = server_mod.LocalServer(keys=[KEY], provision=True).start()
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def django_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Django test project's database, migrated once (a file every worker shares)."""
    path = tmp_path_factory.mktemp("django") / "db.sqlite3"
    if importlib.util.find_spec("django") is not None:
        env = {**os.environ, "COHRT_TEST_DJANGO_DB": str(path)}
        subprocess.run(
            [sys.executable, str(DJANGO_DIR / "manage.py"), "migrate", "-v", "0"],
            env=env, check=True, timeout=120, capture_output=True,
        )  # fmt: skip
    return str(path)


@pytest.fixture
def channel(request: pytest.FixtureRequest) -> str:
    """A channel name unique to this test."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:50]
    return f"site:{name}_{next(_counter)}"


def site_env(api: Any, **extra: str) -> Dict[str, str]:
    """The environment of a web server or bot: the key and the API's URL, nothing of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COHRT_", "COHESIVITY_"))}
    env.update(COHRT_KEY=KEY, COHRT_BASE_URL=api.base_url, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), str(DJANGO_DIR), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    env.update(extra)
    return env


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = DEADLINE) -> Any:
    """Poll ``predicate`` until it is truthy; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


class Proc:
    """A child process whose stdout and stderr go to one log file.

    :param argv: the command.
    :param log: the log file.
    :param env: its environment.
    :param cwd: its working directory.
    """

    def __init__(self, argv: Sequence[str], log: Path, env: Dict[str, str], cwd: Path) -> None:
        self.argv = list(argv)
        self.log_path = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                start_new_session=True,  # a Ctrl-C of the test run is not theirs
            )  # fmt: skip

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def log(self) -> str:
        """Everything it printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        """The first match of ``pattern`` in its log, once it printed one."""

        def found() -> Optional[re.Match[str]]:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.argv[0]} exited with {self.proc.returncode}:\n{self.log()[-3000:]}"
                )
            return re.search(pattern, self.log())

        try:
            return wait_for(f"{pattern!r} in the log of {self.argv[:3]}", found, timeout)  # type: ignore[no-any-return]
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.log()[-3000:]}") from None

    def stop(self, signum: int, timeout: float = DEADLINE) -> int:
        """Send ``signum``; its exit status (killed, and failed, past ``timeout``)."""
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.argv[:3]} still running {timeout} s after {signal.Signals(signum).name}:"
                f"\n{self.log()[-3000:]}"
            ) from None

    def kill(self) -> None:
        """Kill it and what it started (its session), if still running."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """``procs(name, argv, env)``: start a child process; killed at teardown if still running."""
    started: List[Proc] = []

    def start(name: str, argv: Sequence[str], env: Dict[str, str], cwd: Path = HERE) -> Proc:
        proc = Proc(argv, tmp_path / f"{name}.log", env, cwd)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


class Watcher:
    """A member of the channel, in the test process: what it sees."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Any] = queue.Queue()
        self.events: queue.Queue[Any] = queue.Queue()

    @cohrt_sync.hookimpl
    def on_message(self, channel: Any, message: Any) -> None:
        self.messages.put(message)

    @cohrt_sync.hookimpl
    def on_join(self, channel: Any, user: Any) -> None:
        self.events.put(("join", user.id))

    @cohrt_sync.hookimpl
    def on_leave(self, channel: Any, user: Any) -> None:
        self.events.put(("leave", user.id))

    def next_message(self, event: str, timeout: float = DEADLINE) -> Any:
        """The next message of ``event``; fail after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while True:
            try:
                message = self.messages.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {event!r} message within {timeout} s") from None
            if message.event == event:
                return message

    def next_event(self, kind: str, who: str, timeout: float = DEADLINE) -> None:
        """Wait for ``(kind, who)``: ``("leave", "bot")``."""
        end = time.monotonic() + timeout
        while True:
            try:
                event = self.events.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind} of {who!r} within {timeout} s") from None
            if event == (kind, who):
                return


@pytest.fixture
def watcher(api: Any, channel: str) -> Iterator[Watcher]:
    """A watcher subscribed to ``channel``."""
    seen = Watcher()
    with cohrt_sync.Client(key=KEY, base_url=api.base_url, plugins=[seen]) as client:
        client.subscribe(channel, user_id="watcher")
        yield seen


def python_tool(name: str) -> str:
    """The path of a console script installed beside this Python (gunicorn, uwsgi ...)."""
    return str(Path(sys.executable).with_name(name))
