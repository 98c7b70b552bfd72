"""Plugin loading, the hook reference, and the example plugin installed as a distribution."""

from __future__ import annotations

import importlib.metadata
import inspect
import pathlib
from typing import Any

import pluggy
import pytest

import cohrt_sync
from cohrt_sync import hookspecs, plugins

from .conftest import Recorder

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOOKS = sorted(
    name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("on_")
)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_and_exercised(hook: str) -> None:
    assert hook in (ROOT / "docs" / "plugins.md").read_text()
    tests = "".join(p.read_text() for p in (ROOT / "tests" / "client").rglob("test_*.py"))
    conftest = (ROOT / "tests" / "client" / "conftest.py").read_text()
    assert f"def {hook}(" in conftest  # the Recorder implements it
    assert f'"{hook[3:]}"' in tests or hook in tests  # and a test looks at it


def test_contract_hook_names_and_arguments() -> None:
    pm = plugins.make_plugin_manager()
    spec = {name: getattr(pm.hook, name).spec.argnames for name in HOOKS}
    assert spec["on_message"] == ("channel", "message")
    assert spec["on_join"] == ("channel", "user")
    assert spec["on_leave"][:2] == ("channel", "user")
    assert spec["on_dm_request"] == ("channel", "message")


def test_misspelt_hook_fails_loudly() -> None:
    class Typo:
        @cohrt_sync.hookimpl
        def on_mesage(self, channel: Any, message: Any) -> None: ...

    with pytest.raises(pluggy.PluginValidationError):
        plugins.make_plugin_manager([Typo()])
    client = cohrt_sync.Client(key="k", base_url="http://127.0.0.1:9")
    with pytest.raises(pluggy.PluginValidationError):
        client.register(Typo())
    client.close()


def test_register_accepts_subset_of_arguments() -> None:
    class Minimal:
        @cohrt_sync.hookimpl
        def on_message(self, message: Any) -> None: ...

    client = cohrt_sync.Client(key="k", base_url="http://127.0.0.1:9")
    name = client.register(Minimal(), name="minimal")
    assert name == "minimal" and client.plugin_manager.has_plugin("minimal")
    client.unregister(client.plugin_manager.get_plugin("minimal"))
    assert not client.plugin_manager.has_plugin("minimal")
    client.close()


class FakeEntryPoint:
    """Stands in for an installed distribution's entry point; counts imports."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.loads = 0
        self.plugin = object()

    def load(self) -> object:
        self.loads += 1
        if self.fail:
            raise ImportError("No module named 'broken_dep'")
        return self.plugin


@pytest.fixture
def fake_installed(monkeypatch: pytest.MonkeyPatch) -> dict:
    eps = {n: FakeEntryPoint(n) for n in ("alpha", "beta")}
    eps["broken"] = FakeEntryPoint("broken", fail=True)
    monkeypatch.setattr(plugins, "installed_entry_points", lambda: dict(eps))
    monkeypatch.setattr(plugins, "_loaded", {})
    return eps


def test_no_installed_plugin_loads_unless_asked(fake_installed: dict) -> None:
    pm = plugins.make_plugin_manager()
    assert all(pm.get_plugin(n) is None for n in fake_installed)
    assert all(ep.loads == 0 for ep in fake_installed.values())
    defaults = {name for name, _ in plugins.DEFAULT_PLUGINS}
    assert defaults <= {n for n, _ in pm.list_name_plugin()}


def test_named_plugins_load_and_the_others_are_never_imported(fake_installed: dict) -> None:
    pm = plugins.make_plugin_manager(entry_points=["beta"])
    assert pm.get_plugin("beta") is fake_installed["beta"].plugin
    assert pm.get_plugin("alpha") is None
    assert fake_installed["alpha"].loads == 0 and fake_installed["broken"].loads == 0
    plugins.make_plugin_manager(entry_points=["beta"])
    assert fake_installed["beta"].loads == 1  # imported once per process


def test_unknown_name_raises_listing_what_is_installed(fake_installed: dict) -> None:
    with pytest.raises(cohrt_sync.BadRequestError) as info:
        cohrt_sync.Client(key="k", base_url="http://127.0.0.1:9", entry_points=["ehco"])
    assert "'ehco'" in str(info.value) and "alpha, beta, broken" in str(info.value)
    assert all(ep.loads == 0 for ep in fake_installed.values())
    with pytest.raises(cohrt_sync.BadRequestError):
        plugins.make_plugin_manager(entry_points="alpha")  # a bare string is not a list


def test_all_skips_a_broken_plugin_but_a_named_one_raises(
    fake_installed: dict, caplog: pytest.LogCaptureFixture
) -> None:
    pm = plugins.make_plugin_manager(entry_points=True)
    assert pm.get_plugin("alpha") is not None and pm.get_plugin("beta") is not None
    assert pm.get_plugin("broken") is None
    assert "skipping cohrt_sync plugin 'broken'" in caplog.text
    with pytest.raises(ImportError, match="'broken' could not be loaded"):
        plugins.make_plugin_manager(entry_points=["broken"])


def _echo_installed() -> bool:
    eps: Any = importlib.metadata.entry_points()
    found = eps.select(group="cohrt_sync") if hasattr(eps, "select") else eps.get("cohrt_sync", [])
    return any(ep.name == "echo" for ep in found)


@pytest.mark.skipif(
    not _echo_installed(),
    reason="example plugin not installed: pip install -e plugins/cohrt-sync-echo",
)
def test_echo_plugin_loads_through_entry_point(server: Any, make_client: Any,
                                               recorder: Recorder, channel_name: str) -> None:
    assert not make_client(server).plugin_manager.has_plugin("echo")
    client = make_client(server, plugins=[recorder], entry_points=["echo"])
    assert client.plugin_manager.has_plugin("echo")
    ch = client.subscribe(channel_name, user_id="u")
    ch.publish({"text": "ping"}, event="echo_request")
    echoed = recorder.wait_for(lambda: [m for m in recorder.messages() if m.event == "echo"])
    assert echoed[0].data == {"echo": {"text": "ping"}}

