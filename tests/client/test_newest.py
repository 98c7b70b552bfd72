"""``client.newest(channel, n)``: the newest n messages, oldest first, in one SQL request.

Against the real local server. Its answer's shape, and the fallback to the
history walk, are in tests/hostile/test_newest_answers.py.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

import cohrt_sync

from .conftest import CountingSession


def test_newest_is_the_channels_last_n_oldest_first(
    server: Any, make_client: Callable[..., cohrt_sync.Client], channel_name: str
) -> None:
    client = make_client(server)
    other = channel_name + "-other"
    mine = []
    for n in range(12):
        mine.append(client.publish(channel_name, {"n": n}).id)
        client.publish(other, {"noise": n}, event="noise")
    newest = client.newest(channel_name, 5)
    assert [m.id for m in newest] == mine[-5:]
    assert [m.data for m in newest] == [{"n": n} for n in range(7, 12)]
    assert all(m.channel == channel_name and m.event == m.action == "message" for m in newest)
    # The same messages history gives, field for field.
    assert newest == client.history(channel_name, after=mine[-6], limit=5)
    # Ids count across the tenant: the channel's are increasing, not consecutive.
    assert all(b - a == 2 for a, b in zip(mine, mine[1:]))
    assert client.newest(channel_name) == client.history(channel_name, limit=50)  # n=50, 12 there
    assert client.newest(channel_name + "-empty") == []


def test_newest_of_a_long_channel_takes_one_request(
    server: Any, make_client: Callable[..., cohrt_sync.Client], channel_name: str
) -> None:
    writer = make_client(server)
    ch = writer.subscribe(channel_name, user_id="writer")
    ch.publish_many([{"n": n} for n in range(450)])
    ch.close()
    session = CountingSession()
    client = make_client(server, session=session)
    newest = client.newest(channel_name, 50)
    assert [m.data["n"] for m in newest] == list(range(400, 450))
    asked = [p for p in session.paths if not p.startswith("edge/session")]
    assert asked == ["edge/database"]  # the walk would be 5 history pages


@pytest.mark.parametrize("n", [0, 1001, -1, True, 2.0, "5"])
def test_a_bad_n_raises_before_any_request(
    server: Any, make_client: Callable[..., cohrt_sync.Client], n: Any
) -> None:
    session = CountingSession()
    client = make_client(server, session=session)
    with pytest.raises(cohrt_sync.BadRequestError, match="n must be"):
        client.newest("chat:x", n)
    with pytest.raises(cohrt_sync.BadRequestError):
        client.newest("", 5)
    assert session.paths == []
