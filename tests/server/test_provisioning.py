"""Provisioning: /api/resources/realtime and /api/resources/database (spec: Prerequisites)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ._wire import Api, Sock, assert_envelope, assert_refusal_envelope, refusal, uniq
from .conftest import make_server

ALIASES = {
    "us-west": "wnam",
    "us": "enam",
    "eu": "weur",
    "eu-east": "eeur",
    "apac": "apac",
    "australia": "oc",
    "wnam": "wnam",
    "enam": "enam",
    "weur": "weur",
    "eeur": "eeur",
    "oc": "oc",
}
KEYS = [f"kp_{i:02d}_9e1d" for i in range(60)]


@pytest.fixture(scope="module")
def bare() -> Iterator[Any]:
    """A server whose keys are all unprovisioned."""
    srv = make_server(keys=KEYS, provision=False)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


_free = iter(KEYS)


@pytest.fixture()
def fresh(bare: Any) -> Api:
    """A key nobody has provisioned yet."""
    return Api(bare.base_url, next(_free))


def test_edge_realtime_calls_fail_until_provisioned(fresh: Api) -> None:
    ch = uniq()
    assert_envelope(fresh.mint_resp({"user_id": "a"}), 403, "FAILED_PRECONDITION")
    assert_envelope(fresh.publish(ch, {"n": 1}), 403, "FAILED_PRECONDITION")
    assert_envelope(fresh.history(ch), 403, "FAILED_PRECONDITION")
    r = fresh.provision()
    assert r.status_code in (200, 201), r.text
    assert fresh.mint_resp({"user_id": "a"}).status_code == 200
    assert fresh.publish(ch, {"n": 1}).status_code == 200
    assert [m["data"] for m in fresh.history_ok(ch)] == [{"n": 1}]


def test_provision_defaults_to_apac(fresh: Api) -> None:
    r = fresh.provision()
    assert r.status_code in (200, 201), r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["write_region"] == "apac"


@pytest.mark.parametrize("given,resolved", sorted(ALIASES.items()))
def test_write_region_aliases(fresh: Api, given: str, resolved: str) -> None:
    r = fresh.provision({"write_region": given})
    assert r.status_code in (200, 201), r.text
    assert r.json()["write_region"] == resolved


@pytest.mark.parametrize("region", ["mars", "", "US ", "us_west", 5, ["us"], {"r": "us"}])
def test_bad_write_region_is_400(fresh: Api, region: object) -> None:
    assert_envelope(fresh.provision({"write_region": region}), 400)
    # and nothing was provisioned by the refused call
    assert_envelope(fresh.mint_resp({"user_id": "a"}), 403)


def test_provision_unknown_or_missing_key_is_401(bare: Any) -> None:
    assert_envelope(Api(bare.base_url, "kp_unknown").provision(), 401)
    assert_envelope(requests.post(f"{bare.base_url}/api/resources/realtime", timeout=5), 401)
    # the ?key= bootstrap is an edge convenience; a wrong Bearer is still a 401
    r = requests.post(
        f"{bare.base_url}/api/resources/realtime",
        headers={"Authorization": "Bearer nope"},
        timeout=5,
    )
    assert_envelope(r, 401)


def test_database_cannot_be_deleted_while_realtime_is_active(fresh: Api) -> None:
    assert fresh.provision().status_code in (200, 201)
    assert_envelope(fresh.deprovision("database"), 409, "FAILED_PRECONDITION")
    # still fully working afterwards
    assert fresh.sql_rows("SELECT count(*) AS n FROM realtime_messages") == [{"n": 0}]


def test_delete_realtime_drops_messages_and_reprovision_starts_empty(fresh: Api) -> None:
    ch = uniq()
    assert fresh.provision().status_code in (200, 201)
    fresh.publish_ok(ch, {"old": 1})
    r = fresh.deprovision()
    assert r.status_code in (200, 204), r.text
    # realtime is gone
    assert_envelope(fresh.publish(ch, {"n": 2}), 403, "FAILED_PRECONDITION")
    assert_envelope(fresh.history(ch), 403, "FAILED_PRECONDITION")
    assert_envelope(fresh.mint_resp({"user_id": "a"}), 403, "FAILED_PRECONDITION")
    # and realtime_messages was dropped
    assert fresh.provision().status_code in (200, 201)
    assert fresh.history_ok(ch) == []
    assert fresh.sql_rows("SELECT count(*) AS n FROM realtime_messages") == [{"n": 0}]


# Assumption: "You cannot delete database while realtime is active" implies you can once it is not.
def test_database_can_be_deleted_once_realtime_is_gone(fresh: Api) -> None:
    assert fresh.provision().status_code in (200, 201)
    assert fresh.deprovision().status_code in (200, 204)
    r = fresh.deprovision("database")
    assert r.status_code in (200, 204), r.text
    # provisioning realtime again auto-provisions the database again
    assert fresh.provision().status_code in (200, 201)
    assert fresh.sql_rows("SELECT count(*) AS n FROM realtime_messages") == [{"n": 0}]


def test_socket_open_rechecks_realtime_is_active(fresh: Api) -> None:
    """Spec: the Worker re-checks that the tenant and realtime are active when the socket opens."""
    ch = uniq()
    assert fresh.provision().status_code in (200, 201)
    tok = fresh.token("alice", ttl=3600)
    with Sock(fresh.base_url, tok, ch):
        pass
    assert fresh.deprovision().status_code in (200, 204)
    status, body, _ = refusal(fresh.base_url, token=tok, channel=ch)
    assert status == 403, (status, body)
    assert_refusal_envelope(403, body, "FAILED_PRECONDITION")


def test_provision_is_idempotent(fresh: Api) -> None:
    ch = uniq()
    assert fresh.provision({"write_region": "eu"}).status_code in (200, 201)
    fresh.publish_ok(ch, {"keep": 1})
    r = fresh.provision({"write_region": "eu"})
    assert r.status_code in (200, 201), r.text
    assert r.json()["write_region"] == "weur"
    assert [m["data"] for m in fresh.history_ok(ch)] == [{"keep": 1}]


def _pause_every_tenant(data_dir: Any) -> None:
    """Mark the stored tenants paused, as an ephemeral lifetime cap does."""
    import sqlite3

    con = sqlite3.connect(str(data_dir / "server.sqlite3"))
    try:
        con.execute("UPDATE tenants SET paused = 1, realtime = 0")
        con.commit()
    finally:
        con.close()


def test_provisioning_leaves_a_paused_tenant_paused(tmp_path: Any) -> None:
    """Neither the API nor ``--provision`` at start lifts a pause: a paused
    tenant may delete and provision realtime, and must not escape its cap so."""
    key = "kp_paused_3b7c"
    make_server(keys=[key], provision=False, data_dir=tmp_path).start().stop()
    _pause_every_tenant(tmp_path)
    srv = make_server(keys=[key], provision=True, data_dir=tmp_path)
    srv.start()
    try:
        api = Api(srv.base_url, key)
        auth = {"Authorization": f"Bearer {key}"}
        listed = api.request("GET", "/api/resources", headers=auth).json()
        assert listed["resources"]["realtime"]["active"] is True
        assert listed["paused"] is True
        assert api.deprovision().status_code == 200
        assert api.provision({}).status_code == 200
        assert api.request("GET", "/api/resources", headers=auth).json()["paused"] is True
    finally:
        srv.close()


def test_a_key_added_with_provision_before_start_is_provisioned_at_start() -> None:
    """``add_key(key, provision=True)`` on a stopped server provisions the key
    when the server starts, as it does on a running one; the server's own
    keys stay as its ``provision`` setting says."""
    srv = make_server(keys=["kp_own_5d1a"], provision=False)
    srv.add_key("kp_early_8f2c", provision=True)
    srv.add_key("kp_plain_4e6b", provision=False)
    srv.start()
    try:
        early, plain, own = (
            Api(srv.base_url, key) for key in ("kp_early_8f2c", "kp_plain_4e6b", "kp_own_5d1a")
        )
        assert early.mint_resp({"user_id": "a"}).status_code == 200
        assert early.publish(uniq(), {"n": 1}).status_code == 200
        assert_envelope(plain.mint_resp({"user_id": "a"}), 403, "FAILED_PRECONDITION")
        assert_envelope(own.mint_resp({"user_id": "a"}), 403, "FAILED_PRECONDITION")
    finally:
        srv.close()
