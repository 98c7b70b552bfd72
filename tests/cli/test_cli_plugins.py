"""The CLI loads an installed plugin only when asked (--plugin NAME / --plugins), and lists them.

The echo plugin (plugins/cohrt-sync-echo) is installed by the README's test
command; it answers each ``echo_request`` with an ``echo`` over the socket.
"""

from __future__ import annotations

import json
import signal
from typing import List

import pytest

from cohrt_sync.server import LocalServer

from .conftest import Listener, publish, run


def echoes_after_request(server: LocalServer, channel: str, *flags: str) -> List[dict]:
    """The echo events a listener with ``flags`` printed for one ``echo_request``.

    A loaded echo plugin publishes from the listener's dispatcher and waits for
    the ack before the next message is printed; so once marker A is printed any
    echo was applied by the server, which orders it before marker B.
    """
    listener = Listener(server, channel, *flags)
    try:
        listener.until(lambda d: d["type"] == "subscribed")
        publish(server, channel, {"ping": 1}, event="echo_request")
        publish(server, channel, "A", event="marker")
        listener.until(lambda d: d.get("event") == "marker" and d["data"] == "A")
        publish(server, channel, "B", event="marker")
        listener.until(lambda d: d.get("event") == "marker" and d["data"] == "B")
    finally:
        assert listener.stop(signal.SIGINT) == 130
    return [d for d in listener.seen if d.get("event") == "echo"]


def test_listen_loads_no_plugin_unless_asked(server: LocalServer) -> None:
    assert echoes_after_request(server, "cli:plug-none") == []


def test_listen_with_plugin_echo_answers(server: LocalServer) -> None:
    [echo] = echoes_after_request(server, "cli:plug-echo", "--plugin", "echo")
    assert echo["data"] == {"echo": {"ping": 1}}


def test_listen_with_all_plugins_answers(server: LocalServer) -> None:
    assert len(echoes_after_request(server, "cli:plug-all", "--plugins")) == 1


def test_unknown_plugin_name_is_one_line_listing_installed(server: LocalServer) -> None:
    r = run("publish", "cli:x", "1", "--plugin", "ecko", base_url=server.base_url)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1, r.stderr
    assert "'ecko'" in r.stderr and "installed: " in r.stderr and "echo" in r.stderr


def test_plugins_lists_distribution_version_and_hooks() -> None:
    r = run("plugins")
    assert r.returncode == 0, r.stderr
    assert "echo  (cohrt-sync-echo 0.1.0, module cohrt_sync_echo)" in r.stdout
    assert "hooks: on_message" in r.stdout
    r = run("plugins", "--json")
    [echo] = [p for p in json.loads(r.stdout) if p["name"] == "echo"]
    assert echo == {
        "name": "echo",
        "module": "cohrt_sync_echo",
        "distribution": "cohrt-sync-echo",
        "version": "0.1.0",
        "hooks": ["on_message"],
        "error": None,
    }


@pytest.mark.parametrize("command", ["publish", "history", "listen", "token", "sql", "provision"])
def test_every_client_command_takes_plugin_flags(command: str) -> None:
    r = run(command, "--help")
    assert "--plugin NAME" in r.stdout and "--plugins" in r.stdout
