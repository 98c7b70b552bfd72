"""The OpenAPI document: shipped, served, valid, complete, and what the server really does.

The schemathesis run drives every documented operation of a real server with
generated requests, positive (valid per the document) and negative (not), and
checks every answer against the document: never a 5xx, only documented status
codes, content types, headers and bodies, valid data accepted and invalid data
refused.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterator, List

import pytest
import requests
import schemathesis
import schemathesis.checks
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET

import cohrt_sync
from cohrt_sync.server import LocalServer

from ._openapi import DOC_PATH, DOCUMENT, OPERATIONS, packaged_bytes
from ._openapi import real_ids as make_real_ids

#: A tenant for the edge operations and RealtimeKit.
KEY_EDGE = "ke_openapi_5c3b1a0f9e8d"
#: Direct SQL gets its own tenant: generated SQL can't drop another's table.
KEY_SQL = "ks_openapi_7a6b5c4d3e2f"
#: Provisioning gets its own tenant: generated DELETEs would otherwise
#: de-provision the tenant every other operation runs on, and each later
#: example would test only the 403 of a tenant without realtime.
KEY_PROV = "kp_openapi_0f1e2d3c4b5a"


def key_for(path: str) -> str:
    if path.startswith("/api/"):
        return KEY_PROV
    if path == "/edge/database":
        return KEY_SQL
    return KEY_EDGE


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    # rtk_delay_ms=0: a meeting made for the run is readable at once.
    with LocalServer(keys=[KEY_EDGE, KEY_SQL, KEY_PROV], provision=True, rtk_delay_ms=0) as srv:
        yield srv


def test_served_document_is_the_packaged_one(server: LocalServer) -> None:
    r = requests.get(server.base_url + DOC_PATH, timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == DOCUMENT
    assert r.content == packaged_bytes()


def test_document_is_valid_openapi() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1.")
    assert DOCUMENT["info"]["version"] == cohrt_sync.__version__


def test_document_covers_every_route(server: LocalServer) -> None:
    """Every route the server serves is documented, and nothing else is."""
    app = server._runner.app if server._runner is not None else None
    assert app is not None
    served = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method == "*":
            continue  # RealtimeKit's catch-all: Cloudflare's 404/405 for paths no route serves
        served.add((path, route.method.lower()))
    documented = {(p, m) for p, m in OPERATIONS}
    assert served == documented


# -- the schemathesis run ---------------------------------------------------------------------
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
)
schemathesis.checks.load_all_checks()
CHECKS: List[Callable[..., Any]] = [getattr(schemathesis.checks, n) for n in CHECK_NAMES]
# Same on every schemathesis version: valid data gets 2xx, or 404 for an id that
# names nothing (random UUIDs), 401/403/409 where the tenant's state says no.
CONFIG = schemathesis.Config.from_dict(
    {
        # The test sends each tenant's key itself; generated credentials would be
        # overridden by it, turning negative cases into valid ones.
        "generation": {"with-security-parameters": False},
        "checks": {
            "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409"]},
            "negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "413"]},
        },
    }
)
#: Checks that can't apply to one operation, and why.
NOT_APPLICABLE = {
    # The document can't say which strings are valid SQL: a schema-valid query
    # such as "0" is a syntax error, rightly a 400.
    ("/edge/database", "post"): {"positive_data_acceptance"},
}
MAX_EXAMPLES = 40


@pytest.fixture(scope="module")
def schema(server: LocalServer) -> Any:
    """The document as schemathesis loads it from the running server."""
    return schemathesis.openapi.from_url(server.base_url + DOC_PATH, config=CONFIG)


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def is_http(case: Any) -> bool:
    """False for headers that HTTP itself forbids (RFC 9110 §5.1, §5.5).

    Negative generation invents such headers; aiohttp's parser refuses them
    before any handler runs, with its own text/plain 400. That is an answer
    of the HTTP layer to something that is not HTTP, not an operation's.
    """
    return all(
        _TOKEN.fullmatch(name) and not _CTL.search(str(value))
        for name, value in (case.headers or {}).items()
    )


@pytest.fixture()
def real_ids(server: LocalServer) -> Dict[str, str]:
    """A fresh meeting and participant, so id routes get past their 404.

    Fresh for each operation: one operation's examples may make the meeting
    INACTIVE or delete the participant, which must not decide the next one's.
    """
    return make_real_ids(server.base_url, KEY_EDGE, {"title": "fuzz"}, "group_call_host")


@pytest.mark.parametrize("path,method", OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_operation_conforms_to_document(
    server: LocalServer, schema: Any, real_ids: Dict[str, str], path: str, method: str
) -> None:
    operation = schema[path][method.upper()]
    headers = {"Authorization": f"Bearer {key_for(path)}"}
    skip = NOT_APPLICABLE.get((path, method), set())
    checks = [c for n, c in zip(CHECK_NAMES, CHECKS) if n not in skip]
    negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    body = DOCUMENT["paths"][path][method].get("requestBody")
    if body is not None and not body.get("required", False):
        # Older schemathesis (4.4, the newest for Python 3.9) "negates" an
        # optional body by leaving it out, which is valid: not a negative case.
        negative = negative.filter(lambda case: case.body is not NOT_SET)
    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE), negative]
    if "{" in path:
        strategies.append(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=real_ids)
        )

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(case=st.one_of(strategies).filter(is_http))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=server.base_url, headers=headers, checks=checks, timeout=10)

    run()


def test_tier_refusals_match_the_document() -> None:
    """429 with Retry-After, and a paused tenant's 403: answers the unlimited tier never gives."""
    loaded = schemathesis.openapi.from_dict(DOCUMENT)
    with LocalServer(keys=[KEY_EDGE], provision=True, tier="ephemeral", rtk_delay_ms=0) as srv:
        auth = {"Authorization": f"Bearer {KEY_EDGE}"}

        def post(path: str, body: Dict[str, Any]) -> requests.Response:
            return requests.post(srv.base_url + path, json=body, headers=auth, timeout=5)

        # 5 token mints a minute on the ephemeral tier.
        mints = [post("/edge/realtime/token", {"user_id": "u"}) for _ in range(6)]
        assert [r.status_code for r in mints] == [200] * 5 + [429], mints[-1].text
        for r in mints:
            loaded["/edge/realtime/token"]["POST"].validate_response(r)
        assert int(mints[-1].headers["Retry-After"]) >= 1
        # 10 participant tokens per ephemeral tenant's lifetime; the 11th pauses it.
        meeting = post("/edge/realtimekit/meetings", {}).json()["data"]["id"]
        path = "/edge/realtimekit/meetings/{meeting_id}/participants"
        adds = [
            post(path.format(meeting_id=meeting), {"preset_name": "group_call_host"})
            for _ in range(11)
        ]
        assert [r.status_code for r in adds] == [201] * 10 + [403], adds[-1].text
        for r in adds:
            loaded[path]["POST"].validate_response(r)
        paused = requests.get(
            srv.base_url + "/edge/realtime/history",
            params={"channel": "c"},
            headers=auth,
            timeout=5,
        )
        assert paused.status_code == 403
        loaded["/edge/realtime/history"]["GET"].validate_response(paused)


def test_sql_limit_refusals_match_the_document() -> None:
    """Direct SQL's size limits and storage quota: 413s the generated cases rarely reach."""
    loaded = schemathesis.openapi.from_dict(DOCUMENT)["/edge/database"]["POST"]
    with LocalServer(
        keys=[KEY_SQL], provision=True, max_db_size=1 << 20, sql_max_result_bytes=4096
    ) as srv:

        def sql(query: str) -> requests.Response:
            r = requests.post(
                srv.base_url + "/edge/database",
                json={"query": query},
                headers={"Authorization": f"Bearer {KEY_SQL}"},
                timeout=10,
            )
            loaded.validate_response(r)
            return r

        too_big = sql("SELECT zeroblob(10000) AS b")
        assert (too_big.status_code, too_big.json()["error"]["status"]) == (413, "INVALID_ARGUMENT")
        assert sql("CREATE TABLE t (b BLOB)").status_code == 200
        full = sql(
            "INSERT INTO t SELECT zeroblob(500000) FROM"
            " (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4)"
            " SELECT i FROM n)"
        )
        assert (full.status_code, full.json()["error"]["status"]) == (413, "RESOURCE_EXHAUSTED")
