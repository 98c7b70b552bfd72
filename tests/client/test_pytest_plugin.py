"""The user-facing pytest fixtures work (loaded here with pytest_plugins-style import)."""

from __future__ import annotations

from typing import Any

from cohrt_sync import pytest_plugin

# What the pytest11 entry point does for users, done by hand for this module.
cohrt_key = pytest_plugin.cohrt_key
cohrt_server = pytest_plugin.cohrt_server
cohrt_client = pytest_plugin.cohrt_client


def test_fixture_server_and_client(cohrt_client: Any, cohrt_server: Any) -> None:
    assert cohrt_client.base_url == cohrt_server.base_url
    ch = cohrt_client.subscribe("chat:fixture", user_id="u")
    assert ch.publish({"x": 1}).id is not None
    assert [m.data for m in cohrt_client.history("chat:fixture")] == [{"x": 1}]
