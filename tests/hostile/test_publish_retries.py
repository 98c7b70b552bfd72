"""An HTTP publish that may have been applied is retried only where the server says it
deduplicates ``Idempotency-Key``; elsewhere (the hosted API) the failure is raised,
saying the message may or may not have been published. Never a silent duplicate."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Iterator, List

import pytest

import cohrt_sync
from cohrt_sync.retry import Retry
from tests.client.conftest import closing_clients

from ._server import KEY, HostileServer, json_response


@pytest.fixture(params=[False, True], ids=["no-dedupe", "dedupes"])
def server(request: pytest.FixtureRequest) -> Iterator[HostileServer]:
    """Like the hosted API (says nothing, dedupes nothing), or like the local server."""
    with HostileServer(idempotent=request.param) as srv:
        yield srv


@pytest.fixture
def client(server: HostileServer) -> Iterator[cohrt_sync.Client]:
    retry = Retry(total=3, backoff_factor=0.01, budget=10.0)
    with closing_clients(key=KEY, base_url=server.base_url, retry=retry,
                         timeout=(2.0, 0.5)) as make:
        yield make()


def _first_attempt(server: HostileServer, then: Callable[[Any], Any]) -> Any:
    """A publish knob: the first attempt is committed, then ``then(request)`` answers it;
    later attempts are answered as the server always does."""
    attempts: List[int] = []

    async def knob(request: Any) -> Any:
        attempts.append(1)
        if len(attempts) > 1:
            return None
        await server.publish_http(request)
        return await then(request)

    return knob


async def _hang(request: Any) -> Any:
    await asyncio.sleep(3)  # past the client's 0.5 s read timeout
    return json_response({"late": True})


async def _bad_gateway(request: Any) -> Any:
    return json_response({"error": {"code": 502, "message": "upstream went away"}}, 502)


async def _cut(request: Any) -> Any:
    request.transport.abort()
    return json_response({})


UNCERTAIN = "may or may not have been published"

AFTER_COMMIT = {"timeout": _hang, "502": _bad_gateway, "dropped": _cut}


def _stored(server: HostileServer, channel: str) -> List[Any]:
    return [r["data"] for r in server.rows if r["channel"] == channel]


@pytest.mark.parametrize("failure", sorted(AFTER_COMMIT))
def test_a_keyed_publish_is_retried_only_where_the_server_deduplicates(
    server: HostileServer, client: cohrt_sync.Client, failure: str
) -> None:
    server.on_http_publish = _first_attempt(server, AFTER_COMMIT[failure])
    client.history("chat:x")  # any answer tells the client what the server does
    assert client._http.dedupes_publish is server.idempotent
    if server.idempotent:
        ack = client.publish("chat:a", {"n": 1}, idempotency_key="order-1")
        assert ack.id == server.rows[-1]["id"]
        assert server.hits["http_publish"] >= 2
    else:
        with pytest.raises(cohrt_sync.CohrtError, match=UNCERTAIN) as info:
            client.publish("chat:a", {"n": 1}, idempotency_key="order-1")
        assert "does not say it deduplicates Idempotency-Key" in str(info.value)
        assert server.hits["http_publish"] == 1
    assert _stored(server, "chat:a") == [{"n": 1}]


@pytest.mark.parametrize("failure", sorted(AFTER_COMMIT))
def test_a_publish_without_a_key_is_never_retried_once_it_may_have_been_applied(
    server: HostileServer, client: cohrt_sync.Client, failure: str
) -> None:
    server.on_http_publish = _first_attempt(server, AFTER_COMMIT[failure])
    with pytest.raises(cohrt_sync.CohrtError, match=UNCERTAIN) as info:
        client.publish("chat:a", {"n": 1})
    assert "no idempotency key" in str(info.value)
    assert server.hits["http_publish"] == 1
    assert _stored(server, "chat:a") == [{"n": 1}]


def test_a_refusal_that_applied_nothing_says_nothing_uncertain(
    server: HostileServer, client: cohrt_sync.Client
) -> None:
    async def refuse(request: Any) -> Any:
        return json_response({"error": {"code": 400, "message": "bad event"}}, 400)

    server.on_http_publish = refuse
    with pytest.raises(cohrt_sync.BadRequestError) as info:
        client.publish("chat:a", {"n": 1}, idempotency_key="k")
    assert "may or may not" not in str(info.value)
