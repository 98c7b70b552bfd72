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
    tests = "".join(p.read_text() for p in (ROOT / "tests" / "client").glob("test_*.py"))
    conftest = (ROOT / "tests" / "client" / "conftest.py").read_text()
    assert f"def {hook}(" in conftest  # the Recorder implements it
    assert f'"{hook[3:]}"' in tests or hook in tests  # and a test looks at it


def test_contract_hook_names_and_arguments() -> None:
    pm = plugins.make_plugin_manager(load_entrypoints=False)
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
        plugins.make_plugin_manager([Typo()], load_entrypoints=False)
    client = cohrt_sync.Client(key="k", base_url="http://127.0.0.1:9", load_plugins=False)
    with pytest.raises(pluggy.PluginValidationError):
        client.register(Typo())
    client.close()


def test_register_accepts_subset_of_arguments() -> None:
    class Minimal:
        @cohrt_sync.hookimpl
        def on_message(self, message: Any) -> None: ...

    client = cohrt_sync.Client(key="k", base_url="http://127.0.0.1:9", load_plugins=False)
    name = client.register(Minimal(), name="minimal")
    assert name == "minimal" and client.plugin_manager.has_plugin("minimal")
    client.unregister(client.plugin_manager.get_plugin("minimal"))
    assert not client.plugin_manager.has_plugin("minimal")
    client.close()


def test_env_variable_controls_autoloading(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = object()
    monkeypatch.setattr(plugins, "_installed", [("alpha", fake), ("beta", object())])
    assert plugins.make_plugin_manager(env={}).get_plugin("alpha") is fake
    none = plugins.make_plugin_manager(env={plugins.ENV_LOAD_PLUGINS: ""})
    assert none.get_plugin("alpha") is None and none.get_plugin("beta") is None
    only = plugins.make_plugin_manager(env={plugins.ENV_LOAD_PLUGINS: "beta"})
    assert only.get_plugin("alpha") is None and only.get_plugin("beta") is not None
    assert only.is_blocked("alpha")
    off = plugins.make_plugin_manager(load_entrypoints=False, env={})
    assert off.get_plugin("alpha") is None
    defaults = {name for name, _ in plugins.DEFAULT_PLUGINS}
    assert defaults <= {n for n, _ in off.list_name_plugin()}


def _echo_installed() -> bool:
    eps: Any = importlib.metadata.entry_points()
    found = eps.select(group="cohrt_sync") if hasattr(eps, "select") else eps.get("cohrt_sync", [])
    return any(ep.name == "echo" for ep in found)


@pytest.mark.skipif(
    not _echo_installed(),
    reason="example plugin not installed: pip install -e plugins/cohrt-sync-echo",
)
def test_echo_plugin_loads_through_entry_point(server: Any, make_client: Any,
                                               recorder: Recorder, channel_name: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(plugins.ENV_LOAD_PLUGINS, raising=False)
    client = make_client(server, plugins=[recorder], load_plugins=True)
    assert client.plugin_manager.has_plugin("echo")
    ch = client.subscribe(channel_name, user_id="u")
    ch.publish({"text": "ping"}, event="echo_request")
    echoed = recorder.wait_for(lambda: [m for m in recorder.messages() if m.event == "echo"])
    assert echoed[0].data == {"echo": {"text": "ping"}}
    monkeypatch.setenv(plugins.ENV_LOAD_PLUGINS, "")
    assert not make_client(server, load_plugins=True).plugin_manager.has_plugin("echo")

