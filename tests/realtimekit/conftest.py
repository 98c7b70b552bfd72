"""Fixtures for the RealtimeKit tests: real local servers on port 0, real sockets."""

from __future__ import annotations

import datetime
import itertools
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import pytest
import requests

server_mod = pytest.importorskip("cohrt_sync.server", reason="needs the [server] extra")
LocalServer = server_mod.LocalServer

KEY = "k_rtk_9f2c41d7e8"
OTHER_KEY = "k_rtk_other_51ab"
HOST = "group_call_host"
GUEST = "group_call_participant"

_counter = itertools.count()


class Rtk:
    """Plain ``requests`` against ``/edge/realtimekit`` with one application key."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base = base_url + "/edge/realtimekit"
        self.root = base_url
        self.key = key
        self.session = requests.Session()

    def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        data: Optional[bytes] = None,
        params: Optional[Dict[str, Any]] = None,
        key: Optional[str] = "default",
    ) -> requests.Response:
        query = dict(params or {})
        if key == "default":
            query["key"] = self.key
        elif key is not None:
            query["key"] = key
        return self.session.request(
            method, self.base + path, json=json, data=data, params=query, timeout=10
        )

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        """Call, assert the status and the success envelope, return the JSON body."""
        r = self.call(method, path, **kw)
        assert r.status_code == status, r.text
        body = r.json()
        assert body["success"] is True, body
        return body

    def meeting(self, **fields: Any) -> Dict[str, Any]:
        return dict(self.ok("POST", "/meetings", 201, json=fields)["data"])

    def participant(self, meeting_id: str, **fields: Any) -> Dict[str, Any]:
        fields.setdefault("preset_name", HOST)
        return dict(
            self.ok("POST", f"/meetings/{meeting_id}/participants", 201, json=fields)["data"]
        )

    def verify(self, token: str) -> Dict[str, Any]:
        return dict(self.ok("POST", "/_local/verify-token", json={"token": token})["data"])

    def resource(self, method: str) -> requests.Response:
        """``method`` on ``/api/resources/realtime`` with the key as the bearer."""
        return self.session.request(
            method,
            self.root + "/api/resources/realtime",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=10,
        )

    def deprovision(self) -> None:
        r = self.resource("DELETE")
        assert r.status_code == 200, r.text

    def provision(self) -> None:
        r = self.resource("POST")
        assert r.status_code == 200, r.text

    def edge_bearer(self) -> str:
        """A session bearer from ``/edge/session`` for this key."""
        r = self.session.post(self.root + "/edge/session", params={"key": self.key}, timeout=10)
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


def cf_data(r: requests.Response) -> Any:
    """Assert Cloudflare's success envelope (200 or 201); return its ``data``."""
    assert r.status_code in (200, 201), (r.status_code, r.text[:300])
    body = r.json()
    assert body["success"] is True, body
    return body["data"]


def cf_error(r: requests.Response, status: int) -> Dict[str, Any]:
    """Assert Cloudflare's error envelope with ``status``; return its first error."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False, body
    assert body["messages"] == [] and body["data"] is None
    assert isinstance(body["errors"], list) and body["errors"]
    err = body["errors"][0]
    assert set(err) == {"code", "message"}
    return dict(err)


def google_error(r: requests.Response, status: int) -> Dict[str, Any]:
    """Assert the proxy's Google-style envelope with ``status``; return its error."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == status
    return dict(err)


def iso(value: str) -> datetime.datetime:
    """Parse the server's UTC timestamps, which end in ``Z``."""
    assert value.endswith("Z"), value
    return datetime.datetime.fromisoformat(value[:-1] + "+00:00")


@pytest.fixture(scope="session")
def server() -> Iterator[Any]:
    """A shared server whose meetings are readable at once (no delay). Never advance its clock."""
    srv = LocalServer(keys=[KEY, OTHER_KEY], provision=True, port=0, rtk_delay_ms=0)
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture()
def fresh_key(server: Any) -> str:
    """A new provisioned tenant on the shared server: an empty RealtimeKit app."""
    key = f"k_rtk_fresh_{next(_counter)}"
    server.add_key(key, provision=True)
    return key


@pytest.fixture()
def rtk(server: Any) -> Rtk:
    return Rtk(server.base_url, KEY)


@pytest.fixture()
def fresh(server: Any, fresh_key: str) -> Rtk:
    return Rtk(server.base_url, fresh_key)


@pytest.fixture()
def make_server(tmp_path: Path) -> Iterator[Any]:
    """Start dedicated servers (delay, tier, data dir of your choosing); all stopped after."""
    started = []

    def make(**kw: Any) -> Any:
        opts: Dict[str, Any] = {"keys": [KEY], "provision": True, "port": 0}
        opts.update(kw)
        srv = LocalServer(**opts)
        srv.start()
        started.append(srv)
        return srv

    try:
        yield make
    finally:
        for srv in started:
            srv.close()
