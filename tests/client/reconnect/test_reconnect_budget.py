"""A finite reconnect_backoff.total: the channel gives up, reports it, and closes."""

from __future__ import annotations

from typing import Any

import pytest

import cohrt_sync
from cohrt_sync import Retry

from .conftest import Recorder, wait_until


def test_finite_total_reports_the_failure_and_closes(make_server: Any, make_client: Any,
                                                    recorder: Recorder,
                                                    channel_name: str) -> None:
    srv = make_server()
    tiny = Retry(total=2, backoff_factor=0.01, backoff_max=0.01, jitter=0.0)
    client = make_client(srv, plugins=[recorder], reconnect_backoff=tiny,
                         retry=Retry(total=0), timeout=(0.5, 0.5))
    ch = client.subscribe(channel_name, user_id="u")
    srv.close()  # every reconnect attempt is now refused
    assert ch.wait(10)
    wait_until(lambda: recorder.of("closed"))
    errors = [e[-1] for e in recorder.of("error")]
    # One error per failed attempt, then the one that says the channel gave up.
    assert len(errors) == 3
    final = errors[-1]
    assert isinstance(final, cohrt_sync.CohrtConnectionError) and "gave up" in str(final)
    assert final.__cause__ is errors[-2]
    assert ch.closed and ch not in client.channels
    # A publish then says why the channel stopped, at once: nothing is sent.
    with pytest.raises(cohrt_sync.ChannelClosedError, match="gave up reconnecting"):
        ch.publish({"n": 1}, timeout=30)
    kinds = [e[0] for e in recorder.events]
    assert kinds[-1] == "closed" and kinds.index("disconnected") < kinds.index("error")


def test_total_none_keeps_reconnecting(make_server: Any, make_client: Any, recorder: Recorder,
                                       channel_name: str) -> None:
    srv = make_server()
    forever = Retry(total=None, backoff_factor=0.01, backoff_max=0.01, jitter=0.0)
    client = make_client(srv, plugins=[recorder], reconnect_backoff=forever,
                         retry=Retry(total=0), timeout=(0.5, 0.5))
    ch = client.subscribe(channel_name, user_id="u")
    srv.close()
    wait_until(lambda: len(recorder.of("error")) >= 5)
    assert not ch.closed and not recorder.of("closed")
