"""Each CLI failure a user meets is one line on stderr, a non-zero exit and what to do next."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Iterator

import pytest

from cohrt_sync.server import LocalServer

from .conftest import run


def one_line(r: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    return r.stderr.strip()


@pytest.fixture
def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_on_a_port_in_use_is_one_line(server: LocalServer) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "cohrt_sync.cli", "serve", "--port", str(server.port)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    line = one_line(r)
    assert line == (
        f"cohrt-sync serve: cannot listen on 127.0.0.1:{server.port}: address already in use"
        " (stop what uses it, or pass another --port; --port 0 picks a free one)"
    )


def test_server_not_running_says_connection_refused(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    for command in (["history", "c"], ["listen", "c", "--seconds", "1"]):
        line = one_line(run(*command, base_url=url))
        assert line == (
            f"cohrt-sync {command[0]}: cannot reach {url}: connection refused"
            " (is `cohrt-sync serve` running?)"
        )


def test_a_loopback_base_url_without_scheme_means_http(server: LocalServer) -> None:
    r = run("publish", "cli:scheme", "1", "--base-url", f"127.0.0.1:{server.port}")
    assert r.returncode == 0, r.stderr


def test_a_remote_base_url_without_scheme_is_refused_before_any_request() -> None:
    r = run("history", "c", "--base-url", "api.example.invalid")
    assert r.returncode == 2
    assert "has no scheme: write https://api.example.invalid" in r.stderr
    line = one_line(run("history", "c", base_url="api.example.invalid"), code=2)
    assert line.startswith("cohrt-sync history: $COHESIVITY_BASE_URL: ")


@pytest.fixture(scope="module")
def unprovisioned() -> Iterator[LocalServer]:
    with LocalServer(keys=["k_cli_suite"]) as srv:
        yield srv


def test_not_provisioned_says_run_provision(unprovisioned: LocalServer) -> None:
    line = one_line(run("history", "c", base_url=unprovisioned.base_url))
    assert "run `cohrt-sync provision`" in line


def test_publish_takes_json_where_it_parses_and_text_otherwise(server: LocalServer) -> None:
    for arg in ("hello", "42", '{"a": [1]}', "1 2"):
        r = run("publish", "cli:text", arg, base_url=server.base_url)
        assert r.returncode == 0, r.stderr
    r = run("publish", "cli:text", "--text", '{"a": 1}', base_url=server.base_url)
    assert r.returncode == 0, r.stderr
    r = run("history", "cli:text", base_url=server.base_url)
    got = [json.loads(line)["data"] for line in r.stdout.splitlines()]
    assert got == ["hello", 42, {"a": [1]}, "1 2", '{"a": 1}']
    r = run("publish", "cli:text", "{oops", base_url=server.base_url)
    assert r.returncode == 2 and "not valid JSON" in r.stderr and "--text" in r.stderr


def test_sql_params_are_strings_as_typed(server: LocalServer) -> None:
    r = run(
        "sql", "SELECT ? AS a, ? AS b, ? AS c", "cli:room", "7", "null", base_url=server.base_url
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '{"a": "cli:room", "b": 7, "c": null}'
    r = run("sql", "--text", "SELECT ? AS a", "7", base_url=server.base_url)
    assert r.stdout.strip() == '{"a": "7"}'


def test_every_positional_argument_is_described_and_defaults_are_shown() -> None:
    from cohrt_sync.cli import build_parser

    parser = build_parser()
    todo = [parser]
    seen = 0
    while todo:
        p = todo.pop()
        for action in p._actions:
            if action.choices and hasattr(action, "_name_parser_map"):
                todo += list(action._name_parser_map.values())
            elif not action.option_strings:
                assert action.help, f"{p.prog} {action.dest} has no help"
                seen += 1
    assert seen >= 8
    help_text = run("listen", "--help").stdout
    assert "(default: cohrt-sync-cli)" in " ".join(help_text.split())


def test_a_wrong_key_says_where_the_key_comes_from(server: LocalServer) -> None:
    line = one_line(run("history", "c", base_url=server.base_url, key="k_wrong_123"))
    assert "401" in line and "check --key or $COHESIVITY_KEY" in line
    assert "k_wrong_123" not in line
