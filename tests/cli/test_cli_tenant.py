"""`cohrt-sync tenant claim|unpause` and `serve --key KEY:TIER --account`, as real
processes, on a data dir with and without a server running on it (docs/limits.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from tests.adversarial._proc import ServerProcess
from tests.server.test_pause import history_status, pause_by_participants

KEY = "kcli_tenant_0"


def tenant(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from cohrt_sync.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, "tenant", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def data_dir(srv: ServerProcess) -> Path:
    return Path(srv._dir.name) / "data"


def resources(srv: ServerProcess, key: str) -> Any:
    return srv.get("/api/resources", key).json()


def test_unpause_and_claim_act_on_a_running_server() -> None:
    args = ["--key", KEY, "--tier", "ephemeral", "--provision", "--rtk-delay-ms", "0"]
    with ServerProcess(args) as srv:
        pause_by_participants(srv.base_url, KEY)
        assert history_status(srv.base_url, KEY) == 403
        done = tenant("unpause", KEY, "--data-dir", str(data_dir(srv)))
        assert done.returncode == 0, done.stderr
        # Served again at once, with a new ephemeral lifetime.
        assert history_status(srv.base_url, KEY) == 200
        pause_by_participants(srv.base_url, KEY)
        assert history_status(srv.base_url, KEY) == 403
        done = tenant("claim", KEY, "--tier", "free", "--data-dir", str(data_dir(srv)))
        assert done.returncode == 0, done.stderr
        assert history_status(srv.base_url, KEY) == 200
        assert resources(srv, KEY)["tier"] == "free"
        assert resources(srv, KEY)["paused"] is False


def test_unpause_of_a_running_tenant_resets_nothing() -> None:
    args = ["--key", KEY, "--tier", "ephemeral", "--provision", "--rtk-delay-ms", "0"]
    with ServerProcess(args) as srv:
        auth = {"Authorization": f"Bearer {KEY}"}
        rtk = srv.base_url + "/edge/realtimekit/meetings"
        meeting = requests.post(rtk, json={}, headers=auth, timeout=5).json()["data"]["id"]
        add = f"{rtk}/{meeting}/participants"
        body = {"preset_name": "group_call_host"}
        for _ in range(10):
            assert requests.post(add, json=body, headers=auth, timeout=5).status_code == 201
        assert tenant("unpause", KEY, "--data-dir", str(data_dir(srv))).returncode == 0
        assert requests.post(add, json=body, headers=auth, timeout=5).status_code == 403


def test_a_claim_made_while_stopped_applies_at_start(tmp_path: Path) -> None:
    # A later --data-dir wins over the one ServerProcess passes.
    args = ["--key", KEY, "--tier", "ephemeral", "--data-dir", str(tmp_path)]
    with ServerProcess(args) as srv:
        assert resources(srv, KEY)["tier"] == "ephemeral"
    done = tenant("claim", KEY, "--tier", "plus", "--data-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    with ServerProcess(args) as srv:
        assert resources(srv, KEY)["tier"] == "plus"


def test_unknown_key_or_data_dir_is_an_error(tmp_path: Path) -> None:
    done = tenant("unpause", KEY, "--data-dir", str(tmp_path))
    assert done.returncode == 1 and "no server state" in done.stderr
    with ServerProcess(["--key", KEY]) as srv:
        done = tenant("claim", "k-unknown", "--tier", "free", "--data-dir", str(data_dir(srv)))
        assert done.returncode == 1 and "no tenant has that key" in done.stderr
        assert "k-unknown" not in done.stderr


def test_serve_takes_a_tier_per_key_and_accounts() -> None:
    args = ["--provision", "--tier", "ephemeral", "--key", "kc_a:free", "--key", "kc_b"]
    args += ["--account", "acme=kc_a,kc_c", "--key", "kc_c:free"]
    with ServerProcess(args) as srv:
        assert resources(srv, "kc_a")["tier"] == "free"
        assert resources(srv, "kc_b")["tier"] == "ephemeral"
        mint = srv.base_url + "/edge/realtime/token"

        def mints(key: str, n: int) -> list:
            auth = {"Authorization": f"Bearer {key}"}
            return [
                requests.post(mint, json={"user_id": "u"}, headers=auth, timeout=5).status_code
                for _ in range(n)
            ]

        assert mints("kc_a", 20) == [200] * 20
        assert mints("kc_c", 11) == [200] * 10 + [429]
        assert mints("kc_b", 6) == [200] * 5 + [429]
