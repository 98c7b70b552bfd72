"""The worker matrix: the Flask app under each real server and worker model, with one bot.

One short scenario per server: the bot runs the one-bot way (``flask cohrt
listen``, a process of its own); the app is served with two workers, built
where the server builds it (the master under ``gunicorn --preload`` and
uWSGI's default mode); a browser-less client logs in and asks the routes
for a token, publishes and reads the history over HTTP; the plugin the app
registered at start-up is still registered in the workers; the bot answers
once; then the server gets the signal it stops on and must exit cleanly:
by itself, with the status it promises, every worker through ``atexit``,
nothing in its log about a traceback or a thread that would not stop.

docs/flask.md and docs/django.md, "Worker models", give the results.
"""

from __future__ import annotations

import importlib.util
import re
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Set

import pytest
import requests

from .conftest import DEADLINE, DJANGO_DIR, Proc, Watcher, python_tool, site_env, wait_for


class Model(NamedTuple):
    """A server and worker model, and how it is stopped."""

    id: str
    #: The command serving WSGI app ``target`` with two workers on a free port.
    argv: Callable[[str], List[str]]
    #: What its log says once it listens; group 1 is the port.
    listening: str
    stop: signal.Signals
    #: The exit status it promises after ``stop``.
    rc: int
    #: What must be installed: a module, or a program beside this Python.
    needs: str
    #: How many processes build the app: the master only (preload), or each worker.
    builds: int
    #: Whether the test's HTTP client keeps connections alive (uWSGI: see _uwsgi).
    keepalive: bool = True


def _gunicorn(*extra: str) -> Callable[[str], List[str]]:
    def argv(target: str) -> List[str]:
        cmd = [sys.executable, "-m", "gunicorn", "-b", "127.0.0.1:0", "-w", "2", *extra]
        import gunicorn

        if tuple(int(p) for p in gunicorn.__version__.split(".")[:2]) >= (25, 1):
            # 25.1 added a control socket at ~/.gunicorn, shared by every test run.
            cmd.append("--no-control-socket")
        return [*cmd, target]

    return argv


# uWSGI runs no atexit in a worker that is busy when it is told to stop
# (plugins/python/python_plugin.c, uwsgi_python_atexit), and a worker holding
# a kept-alive connection stays busy waiting for its next request. So the
# test's HTTP client closes each connection (keepalive=False), and the signal
# waits for the log line of the last request, written as the worker ends it.


def _uwsgi(*extra: str) -> Callable[[str], List[str]]:
    def argv(target: str) -> List[str]:
        return [
            python_tool("uwsgi"), "--http-socket", "127.0.0.1:0", "--master",
            "--processes", "2", "--enable-threads", "--home", sys.prefix,
            "--module", target, *extra,
        ]  # fmt: skip

    return argv


def _waitress(target: str) -> List[str]:
    return [sys.executable, "-m", "waitress", "--listen=127.0.0.1:0", "--threads=4", target]


GUNICORN = r"Listening at: http://127\.0\.0\.1:(\d+)"
UWSGI = r"bound to TCP address 127\.0\.0\.1:(\d+)"

MODELS = [
    Model("gunicorn-sync-preload", _gunicorn("-k", "sync", "--preload"), GUNICORN,
          signal.SIGTERM, 0, "gunicorn", 1),
    Model("gunicorn-gthread", _gunicorn("-k", "gthread", "--threads", "4"), GUNICORN,
          signal.SIGTERM, 0, "gunicorn", 2),
    Model("gunicorn-gevent", _gunicorn("-k", "gevent"), GUNICORN, signal.SIGTERM, 0, "gevent", 2),
    # uWSGI 2.0 reloads on SIGTERM unless told --die-on-term; SIGINT stops it.
    Model("uwsgi", _uwsgi("--die-on-term"), UWSGI, signal.SIGTERM, 0, "uwsgi", 1, False),
    Model("uwsgi-lazy-apps", _uwsgi("--lazy-apps"), UWSGI, signal.SIGINT, 0, "uwsgi", 2, False),
    # waitress leaves SIGTERM at Python's default: the app's close_on_sigterm() handles it.
    Model("waitress", _waitress, r"Serving on http://127\.0\.0\.1:(\d+)", signal.SIGTERM, 0,
          "waitress", 1),
]  # fmt: skip

#: What a clean exit never prints.
TROUBLE = ("Traceback", "still running after close()", "Exception ignored", "CRITICAL")


def require(what: str) -> None:
    """Skip unless ``what`` (a module, or ``uwsgi``) is installed; .ci/run installs them all."""
    if what == "uwsgi":
        # Beside this Python, so it embeds this Python (a system uWSGI's plugin
        # embeds another one).
        if not Path(python_tool("uwsgi")).exists():
            pytest.skip(
                "uWSGI is not installed beside this Python "
                "(the [test] extra builds it from source with gcc)"
            )
        return
    if importlib.util.find_spec(what) is None:
        pytest.skip(f"{what} is not installed (the [test] extra installs it)")


class Browser:
    """A browser-less user of a site: a ``requests`` session with its cookies.

    Django's POST routes want the ``csrftoken`` cookie back in ``X-CSRFToken``,
    as ``cohrt-sync.js`` sends it; Flask's ignore the header.
    """

    def __init__(self, base: str, keepalive: bool) -> None:
        self.base = base
        self.keepalive = keepalive
        self.http = requests.Session()
        if not keepalive:
            self.http.headers["Connection"] = "close"
        #: Requests the server answered.
        self.answered = 0

    def send(self, method: str, path: str, **kw: Any) -> requests.Response:
        token = self.http.cookies.get("csrftoken")
        headers = {"X-CSRFToken": token} if token else {}
        try:
            r = self.http.request(method, self.base + path, timeout=DEADLINE, headers=headers, **kw)
        finally:
            if not self.keepalive:
                # The server closes each connection without saying so in its
                # answer: a pooled one would be reused, racing that close.
                self.http.close()
        self.answered += 1
        return r

    def call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.send(method, path, **kw)
        assert r.status_code == 200, (method, path, r.status_code, r.text[:500])
        return r.json() if r.headers.get("Content-Type", "").startswith("application/json") else r

    def answers(self) -> bool:
        try:
            return self.send("GET", "/stats").status_code == 200
        except requests.RequestException:
            return False


class Site(NamedTuple):
    """An app and its one-bot command."""

    id: str
    #: The WSGI target the servers serve.
    target: str
    #: The bot's command, given the channel.
    bot: Callable[[str], List[str]]
    #: Logs ``user`` in as Ann; returns the user id the routes will stamp.
    login: Callable[[Browser], str]


def _flask_login(user: Browser) -> str:
    user.call("POST", "/login?uid=u1&name=Ann")
    return "u1"


def _django_login(user: Browser) -> str:
    user.call("GET", "/login")  # sets the csrftoken cookie
    token = user.http.cookies["csrftoken"]
    r = user.send(
        "POST", "/login", data={"name": "Ann", "csrfmiddlewaretoken": token},
        allow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 302, (r.status_code, r.text[:500])
    return str(user.call("POST", "/realtime/token", json={"channel": "site:whoami"})["user"]["id"])


SITES = [
    Site("flask", "site_flask:app",
         lambda ch: [sys.executable, "-m", "flask", "--app", "site_flask", "cohrt", "listen", ch,
                     "--plugin", "echo", "--user-id", "bot"],
         _flask_login),
    Site("django", "site_django:application",
         lambda ch: [sys.executable, str(DJANGO_DIR / "manage.py"), "cohrt_listen", ch,
                     "--plugin", "echo", "--user-id", "bot"],
         _django_login),
]  # fmt: skip


def exits_of(path: Path) -> Set[int]:
    """The processes that wrote ``exit <pid>`` from their ``atexit``."""
    text = path.read_text() if path.exists() else ""
    return {int(pid) for pid in re.findall(r"^exit (\d+)$", text, re.M)}


def run_scenario(
    site: Site,
    model: Model,
    env: Dict[str, str],
    channel: str,
    watcher: Watcher,
    procs: Any,
    exits: Path,
) -> Set[int]:
    """Bot, server, HTTP flow, signal, each step checked; the worker pids that answered."""
    bot = procs("bot", site.bot(channel), env)
    server: Proc = procs(model.id, model.argv(site.target), env)
    port = server.wait_log(model.listening).group(1)
    user = Browser(f"http://127.0.0.1:{port}", model.keepalive)
    # Every process that builds the app has built it (a signal amid an import
    # is a different story, and not this one).
    wait_for(
        f"the app built {model.builds} time(s)",
        lambda: len(re.findall(r"site ready in \d+", server.log())) >= model.builds,
    )
    wait_for("the app answers", user.answers)
    bot.wait_log(r'"type": "subscribed"')
    watcher.next_event("join", "bot")

    uid = site.login(user)
    token = user.call("POST", "/realtime/token", json={"channel": channel})
    assert token["url"].startswith("ws://") and token["user"] == {"id": uid, "name": "Ann"}
    ack = user.call("POST", "/realtime/publish", json={"channel": channel, "data": {"text": "hi"}})
    assert ack["data"] == {"text": "hi", "sender": {"id": uid, "name": "Ann"}}
    assert watcher.next_message("message").data["text"] == "hi"
    user.call("POST", "/realtime/publish",
              json={"channel": channel, "data": {"ping": 1}, "event": "echo_request"})  # fmt: skip
    assert watcher.next_message("echo").data["echo"]["ping"] == 1
    history = user.call("GET", f"/realtime/history?channel={channel}&newest=10")
    assert [m["data"].get("text") for m in history["items"]] == ["hi", None]
    # The plugin registered at start-up, in every worker that answers.
    stats = [user.call("GET", "/stats") for _ in range(6)]
    assert all(s["registered"] for s in stats), stats
    # One bot: after all of the above, still the one echo.
    user.call("POST", "/realtime/publish",
              json={"channel": channel, "data": {"end": 1}, "event": "marker"})  # fmt: skip
    watcher.next_message("marker")
    assert not [m for m in _drain(watcher) if m.event == "echo"]

    user.http.close()  # a kept-alive connection would hold a graceful stop up
    if not model.keepalive:  # uWSGI: see the note above _uwsgi
        server.wait_log(r"\|req: \d+/%d\]" % user.answered)
    rc = server.stop(model.stop)
    log = server.log()
    assert rc == model.rc, log[-3000:]
    assert not [t for t in TROUBLE if t in log], log[-3000:]
    workers = {s["pid"] for s in stats}
    assert workers <= exits_of(exits), (workers, exits.read_text() if exits.exists() else "")
    assert bot.stop(signal.SIGTERM) == 0, bot.log()
    watcher.next_event("leave", "bot")
    assert not [t for t in TROUBLE if t in bot.log()], bot.log()
    return workers


def _drain(watcher: Watcher) -> List[Any]:
    seen = []
    while not watcher.messages.empty():
        seen.append(watcher.messages.get_nowait())
    return seen


@pytest.mark.parametrize("model", MODELS, ids=[m.id for m in MODELS])
@pytest.mark.parametrize("site", SITES, ids=[s.id for s in SITES])
def test_each_worker_model(
    site: Site,
    model: Model,
    api: Any,
    channel: str,
    watcher: Watcher,
    procs: Any,
    tmp_path: Path,
    django_db: str,
) -> None:
    require(model.needs)
    if site.id == "django":
        pytest.importorskip("django", reason="needs the [django] extra")
    exits = tmp_path / "exits"
    env = site_env(api, SITE_EXITS=str(exits), COHRT_TEST_DJANGO_DB=django_db)
    workers = run_scenario(site, model, env, channel, watcher, procs, exits)
    assert workers
