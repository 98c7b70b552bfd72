"""The `cohrt-sync` command line, run as a real process against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Iterator, List

import pytest

from cohrt_sync.server import LocalServer

KEY = "k_cli_test"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(keys=[KEY], provision=True) as srv:
        yield srv


def cli(server: LocalServer, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COHESIVITY_KEY=KEY, COHESIVITY_BASE_URL=server.base_url)
    return subprocess.run(
        [sys.executable, "-m", "cohrt_sync.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lines(out: str) -> List[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_publish_history_sql_round_trip(server: LocalServer) -> None:
    r = cli(server, "publish", "cli:room", '{"text": "hi"}')
    assert r.returncode == 0, r.stderr
    ack = json.loads(r.stdout)
    assert ack["channel"] == "cli:room" and isinstance(ack["id"], int)
    r = cli(server, "publish", "cli:room", '"typing"', "--event", "typing", "--no-persist")
    assert r.returncode == 0 and json.loads(r.stdout)["id"] is None

    r = cli(server, "history", "cli:room")
    assert r.returncode == 0, r.stderr
    [message] = lines(r.stdout)
    assert message["data"] == {"text": "hi"} and message["id"] == ack["id"]
    assert "1 messages exported from cli:room" in r.stderr

    r = cli(
        server, "sql", "SELECT count(*) AS n FROM realtime_messages WHERE channel = ?", '"cli:room"'
    )
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout) == [{"n": 1}]


def test_history_exports_every_page_to_a_file(server: LocalServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for i in range(130):  # more than one page of 100
        server_publish(server, "cli:export", {"i": i})
    out = tmp_path / "export.jsonl"
    r = cli(server, "history", "cli:export", "-o", str(out))
    assert r.returncode == 0, r.stderr
    got = [m["data"]["i"] for m in lines(out.read_text())]
    assert got == list(range(130))


def server_publish(server: LocalServer, channel: str, data: object) -> None:
    import requests

    r = requests.post(
        f"{server.base_url}/edge/realtime",
        params={"key": KEY},
        json={"channel": channel, "data": data},
        timeout=10,
    )
    r.raise_for_status()


def test_token_and_provision(server: LocalServer) -> None:
    r = cli(server, "token", "42", "--name", "Zed", "--ttl", "600")
    assert r.returncode == 0, r.stderr
    tok = json.loads(r.stdout)
    assert tok["expires_in"] == 600 and tok["token"].count(".") == 2
    r = cli(server, "provision")
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "active"


def test_listen_prints_presence_and_messages(server: LocalServer) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cohrt_sync.cli", "listen", "cli:live", "--seconds", "20"],
        env=dict(os.environ, COHESIVITY_KEY=KEY, COHESIVITY_BASE_URL=server.base_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["type"] == "subscribed" and first["presence"][0]["id"] == "cohrt-sync-cli"
        server_publish(server, "cli:live", {"n": 1})
        got = json.loads(proc.stdout.readline())
        assert got["type"] == "message" and got["data"] == {"n": 1}
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert proc.returncode == 128 + 15  # SIGTERM, after a clean close


def test_errors_are_one_line_without_the_key(server: LocalServer) -> None:
    r = cli(server, "sql", "SELEC nothing")
    assert r.returncode == 1
    assert "syntax error" in r.stderr and "HTTP 400" in r.stderr
    assert KEY not in r.stderr and "Traceback" not in r.stderr
    env = dict(os.environ, COHESIVITY_KEY="wrong-key-123", COHESIVITY_BASE_URL=server.base_url)
    r = subprocess.run(
        [sys.executable, "-m", "cohrt_sync.cli", "history", "cli:room"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 1 and "401" in r.stderr and "wrong-key-123" not in r.stderr


def test_bad_arguments_fail_before_any_request(server: LocalServer) -> None:
    r = cli(server, "publish", "cli:room", "{not json")
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    r = cli(server, "token", "u", "--ttl", "5")
    assert r.returncode == 1 and "ttl" in r.stderr


def test_serve_limit_defaults_are_the_servers() -> None:
    """`serve`'s flags and LocalServer's keywords take every default from Config."""
    import inspect

    import attrs

    from cohrt_sync.cli import LIMIT_FLAGS, build_parser
    from cohrt_sync.server.config import Config

    config = {f.name: f.default for f in attrs.fields(Config)}
    args = build_parser().parse_args(["serve"])
    keywords = inspect.signature(LocalServer).parameters
    names = [name for _, flags in LIMIT_FLAGS for name, *_ in flags]
    for name in [*names, "tier", "max_payload", "rtk_delay_ms"]:
        assert config[name] == getattr(args, name) == keywords[name].default, name
    # The tenant databases' limits come from the same settings.
    limits = Config().sql_limits()
    assert (limits.max_db_size, limits.time_limit) == (config["max_db_size"],
                                                       config["sql_time_limit"])


def test_local_server_takes_every_config_setting() -> None:
    """LocalServer spells out each Config field as a keyword with Config's default."""
    import inspect

    import attrs

    from cohrt_sync.server.config import Config

    keywords = inspect.signature(LocalServer).parameters
    for field in attrs.fields(Config):
        if field.name in ("keys", "tiers", "accounts"):
            # factories in Config; an iterable and optional mappings here
            continue
        assert keywords[field.name].default == field.default, field.name
