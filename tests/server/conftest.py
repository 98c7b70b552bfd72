"""Fixtures for the server conformance suite: real servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ._wire import Api

# Distinctive keys so a leak into a log line is unmistakable.
KEY_A = "ka_7c1e0f3b9d2a4e58"
KEY_B = "kb_52d9e6a1c0f84b37"
#: A tenant whose realtime_messages table a test drops on purpose.
KEY_DROP = "kd_0e9b8a7f6c5d4e3f"
#: A tenant the fuzz tests throw garbage at.
KEY_FUZZ = "kf_1f2e3d4c5b6a7988"


def make_server(**kw: Any) -> Any:
    from cohrt_sync.server import LocalServer

    opts: dict = {"host": "127.0.0.1", "port": 0, "data_dir": None, "provision": True}
    opts.update(kw)
    return LocalServer(**opts)


@pytest.fixture(scope="session")
def server() -> Iterator[Any]:
    """One shared server (unlimited tier, 64 KiB payloads). Never advance its clock."""
    srv = make_server(keys=[KEY_A, KEY_B, KEY_DROP, KEY_FUZZ], max_payload=65536)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def base_url(server: Any) -> str:
    return str(server.base_url)


@pytest.fixture()
def api_a(base_url: str) -> Api:
    return Api(base_url, KEY_A)


@pytest.fixture()
def api_b(base_url: str) -> Api:
    return Api(base_url, KEY_B)
