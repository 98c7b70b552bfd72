"""The project's manage.py as a user runs it: ``check`` warns without a key; ``cohrt_listen``.

Real child processes, a real local server; the bot's plugin is the
installed ``cohrt-sync-echo`` (the README's test command installs it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

import cohrt_sync
from tests.bot_process import DEADLINE, BotProcess, Watcher, next_event
from tests.forked import in_forked_child
from tests.servers.publish_counter import PublishCounter

from .conftest import KEY

HERE = Path(__file__).resolve().parent


def _env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COHRT_", "COHESIVITY_"))}
    env["COHRT_TEST_DJANGO_DB"] = os.environ["COHRT_TEST_DJANGO_DB"]
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=HERE, env=_env(**env), capture_output=True, text=True, timeout=60,
    )


def test_check_warns_when_there_is_no_key() -> None:
    r = manage("check")
    assert r.returncode == 0, r.stderr
    assert "cohrt_sync.W001" in r.stderr and "COHRT_KEY is not set" in r.stderr
    assert "Set COHRT_KEY in settings.py or the environment" in r.stderr
    assert "cohrt_sync.W002" not in r.stderr  # the project sets COHRT_AUTHORIZE
    assert "cohrt_sync.W003" not in r.stderr  # its urls are at /realtime/
    keyed = manage("check", COHRT_KEY=KEY)
    assert keyed.returncode == 0 and "cohrt_sync.W001" not in keyed.stderr, keyed.stderr


def test_check_refuses_settings_that_cannot_work() -> None:
    from django.core.checks import run_checks
    from django.test.utils import override_settings

    with override_settings(
        COHRT_KEY=KEY,
        COHRT_AUTHORIZE="project.realtime.no_such_function",
        COHRT_TIMEOUT="soon",
        COHRT_USER_TOKEN_BUDGET={"burst": 1, "per_hour": 2},
        COHRT_URL_PREFIX="/rt",
    ):
        found = [(m.id, m.msg) for m in run_checks(include_deployment_checks=False)]
    ours = sorted((i, msg) for i, msg in found if i and i.startswith("cohrt_sync."))
    assert [i for i, _ in ours] == [
        "cohrt_sync.E001", "cohrt_sync.E002", "cohrt_sync.E002", "cohrt_sync.W003"
    ], ours
    assert "project.realtime.no_such_function' does not import" in ours[0][1]
    assert ours[1][1].startswith("COHRT_TIMEOUT must be a positive number of seconds")
    assert "COHRT_USER_TOKEN_BUDGET has unknown keys ['per_hour']" in ours[2][1]
    assert ours[3][1] == "the realtime routes are at /realtime/ but COHRT_URL_PREFIX is '/rt'."


def start_bot(base_url: str, *args: str) -> BotProcess:
    """``manage.py cohrt_listen`` with ``args``, against ``base_url``."""
    return BotProcess(
        [sys.executable, "manage.py", "cohrt_listen", *args],
        HERE,
        _env(COHRT_KEY=KEY, COHRT_BASE_URL=base_url),
    )


def test_cohrt_listen_runs_a_plugin_until_sigterm_then_leaves_cleanly(server: Any) -> None:
    channel = "django:bot"
    watcher = Watcher()
    with cohrt_sync.Client(key=KEY, base_url=server.base_url, plugins=[watcher]) as direct:
        ch = direct.subscribe(channel, user_id="watcher")
        bot = start_bot(server.base_url, channel, "--plugin", "echo", "--user-id", "bot-1")
        try:
            first = bot.line()
            assert first["type"] == "subscribed" and first["channel"] == channel
            assert "bot-1" in [u["id"] for u in first["presence"]]
            ch.publish({"ping": 1}, event="echo_request")
            echo = next_event(watcher.messages, "echo")
            assert echo is not None and echo.data == {"echo": {"ping": 1}}
        finally:
            rc = bot.stop(signal.SIGTERM)
        # run_forever closed the client: exit 0, and the bot's socket said goodbye.
        assert rc == 0, bot.proc.stderr.read() if bot.proc.stderr else ""
        left = watcher.left.get(timeout=DEADLINE)
        assert left.id == "bot-1"
        ch.close()


def test_cohrt_listen_loads_no_plugin_unless_asked_and_names_an_unknown_one(server: Any) -> None:
    bad = manage(
        "cohrt_listen", "django:x", "--plugin", "ecko",
        COHRT_KEY=KEY, COHRT_BASE_URL=server.base_url,
    )
    assert bad.returncode == 1
    assert "CommandError" in bad.stderr and "'ecko'" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0, bad.stderr
    channel = "django:no-plugin"
    watcher = Watcher()
    with cohrt_sync.Client(key=KEY, base_url=server.base_url, plugins=[watcher]) as direct:
        ch = direct.subscribe(channel, user_id="watcher")
        bot = start_bot(server.base_url, channel)
        try:
            assert bot.line()["type"] == "subscribed"
            ch.publish({"ping": 1}, event="echo_request")
            ch.publish("after", event="marker")  # any echo would come before it
            assert next_event(watcher.messages, "marker") is not None
            seen = []
            while not watcher.messages.empty():
                seen.append(watcher.messages.get_nowait().event)
            assert "echo" not in seen
        finally:
            assert bot.stop(signal.SIGINT) == 0
        ch.close()


def test_cohrt_listen_without_a_key_is_one_line(server: Any) -> None:
    r = subprocess.run(
        [sys.executable, "manage.py", "cohrt_listen", "django:x"],
        cwd=HERE, env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 1
    # Django's system checks warn first (W001); then the command's one line.
    last = r.stderr.strip().splitlines()[-1]
    assert last == (
        "CommandError: realtime is not configured: set COHRT_KEY in settings.py or the environment"
    ), r.stderr


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (a preforking server's model)")
def test_client_is_lazy_one_per_process_and_keeps_its_plugins_in_a_fork(
    realtime: Any, alice: Any
) -> None:
    from django.test import Client as DjangoClient

    from cohrt_sync.django import client

    realtime()
    parent = client()
    assert client() is parent
    counter = PublishCounter()
    parent.register(counter)  # as a project's AppConfig.ready() may, in the master
    try:
        parent.history("django:before-the-fork")  # a pooled connection the worker inherits
        def worker() -> Dict[str, Any]:
            browser = DjangoClient()
            browser.force_login(alice)
            r = browser.post(
                "/realtime/publish",
                data=json.dumps({"channel": "django:forked", "data": {"n": 1}}),
                content_type="application/json",
            )
            return {
                "same": client() is parent,
                "registered": client().plugin_manager.is_registered(counter),
                "status": r.status_code,
                "published": counter.published,
            }

        found = in_forked_child(worker)
        # The worker kept the client and what was registered on it (before,
        # it made a new client without them), on connections of its own.
        assert found == {"same": True, "registered": True, "status": 200, "published": 1}
        assert client() is parent
        assert counter.published == 0
    finally:
        client().unregister(counter)


def test_a_settings_change_makes_a_new_client_with_the_plugins_of_the_old(
    realtime: Any,
) -> None:
    from cohrt_sync.django import client

    realtime()
    first = client()
    counter = PublishCounter()
    first.register(counter, name="counter")
    try:
        realtime(COHRT_TIMEOUT=5)  # override_settings: the app's state is made again
        second = client()
        assert first.closed and second is not first
        assert second.plugin_manager.get_plugin("counter") is counter
        second.publish("django:again", {"n": 1})
        assert counter.published == 1
    finally:
        client().unregister(counter)
