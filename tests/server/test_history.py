"""History: GET /edge/realtime/history (spec: History; DESIGN §2)."""

from __future__ import annotations

import pytest

from ._wire import Api, assert_envelope, uniq


@pytest.fixture(scope="module")
def long_channel(base_url: str) -> tuple:
    """A channel with 120 persisted messages (and a neighbour channel with noise)."""
    from .conftest import KEY_A

    api = Api(base_url, KEY_A)
    ch, noise = uniq("hist"), uniq("hist")
    ids = []
    for i in range(120):
        ids.append(api.publish_ok(ch, {"i": i}, event="message" if i % 2 else "update")["id"])
        if i % 10 == 0:
            api.publish_ok(noise, {"noise": i})
            api.publish_ok(ch, {"eph": i}, persist=False)
    return ch, ids


def test_item_shape(api_a: Api, long_channel: tuple) -> None:
    ch, ids = long_channel
    first = api_a.history_ok(ch, limit=1)[0]
    assert set(first) >= {"id", "channel", "event", "action", "data", "created_at_ms"}, first
    assert first["id"] == ids[0]
    assert first["channel"] == ch
    assert first["action"] == first["event"] == "update"
    assert first["data"] == {"i": 0}  # decoded JSON, not a string
    assert isinstance(first["created_at_ms"], int)


def test_default_limit_is_50_ascending_from_start(api_a: Api, long_channel: tuple) -> None:
    ch, ids = long_channel
    msgs = api_a.history_ok(ch)
    assert [m["id"] for m in msgs] == ids[:50]
    assert [m["data"] for m in msgs] == [{"i": i} for i in range(50)]
    assert all(m["action"] == m["event"] for m in msgs)


def test_limit_is_capped_at_100(api_a: Api, long_channel: tuple) -> None:
    ch, ids = long_channel
    assert [m["id"] for m in api_a.history_ok(ch, limit=100)] == ids[:100]
    assert [m["id"] for m in api_a.history_ok(ch, limit=1000)] == ids[:100]


def test_after_is_exclusive_and_pages_cover_everything(api_a: Api, long_channel: tuple) -> None:
    ch, ids = long_channel
    assert [m["id"] for m in api_a.history_ok(ch, after=ids[9], limit=3)] == ids[10:13]
    seen: list = []
    after = 0
    while True:
        page = api_a.history_ok(ch, after=after, limit=7)
        if not page:
            break
        seen.extend(m["id"] for m in page)
        after = page[-1]["id"]
    assert seen == ids
    assert api_a.history_ok(ch, after=ids[-1]) == []


def test_after_zero_means_all(api_a: Api, long_channel: tuple) -> None:
    ch, ids = long_channel
    assert [m["id"] for m in api_a.history_ok(ch, after=0, limit=5)] == ids[:5]


def test_unknown_channel_is_empty(api_a: Api) -> None:
    assert api_a.history_ok(uniq()) == []


def test_bearer_session(api_a: Api, long_channel: tuple) -> None:
    ch, ids = long_channel
    r = api_a.history(ch, bearer=api_a.session(), limit=2)
    assert r.status_code == 200, r.text
    assert [m["id"] for m in r.json()["messages"]] == ids[:2]


# Only plain decimal digits: int() would read "1_0" as 10, "+3" as 3, " 4 " as 4
# and "٣" (an Arabic-Indic digit) as 3.
LENIENT = ["1_0", "+3", " 4 ", "4 ", "\t4", "٣", "0x10", "1e2", "-", "--1", "1" * 5000]


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", *LENIENT])
def test_bad_limit_is_400(api_a: Api, limit: str) -> None:
    assert_envelope(api_a.history(uniq(), limit=limit), 400)


@pytest.mark.parametrize("after", ["abc", "1.5", "-1", *LENIENT])
def test_bad_after_is_400(api_a: Api, after: str) -> None:
    assert_envelope(api_a.history(uniq(), after=after), 400)


def test_missing_or_bad_channel_is_400(api_a: Api) -> None:
    assert_envelope(api_a.history(None), 400)
    assert_envelope(api_a.history(""), 400)
    assert_envelope(api_a.history("c" * 257), 400)


@pytest.mark.parametrize("ch", ["q:a&b=c", "q:hash#tag", "q:what?", "q:sp ace+plus", "q:%41"])
def test_channel_names_needing_url_encoding(api_a: Api, ch: str) -> None:
    ch = f"{ch}/{uniq('u')}"
    ack = api_a.publish_ok(ch, {"ch": ch})
    [m] = api_a.history_ok(ch)
    assert m["id"] == ack["id"] and m["channel"] == ch and m["data"] == {"ch": ch}


@pytest.mark.parametrize("after", [str(2**63), str(10**30)])
def test_after_beyond_any_id_is_empty_or_400_never_500(api_a: Api, after: str) -> None:
    ch = uniq()
    api_a.publish_ok(ch, {"n": 1})
    r = api_a.history(ch, after=after)
    assert r.status_code in (200, 400), (r.status_code, r.text)
    if r.status_code == 200:
        assert r.json() == {"messages": []}
    else:
        assert_envelope(r, 400)


def test_huge_limit_is_capped(api_a: Api, long_channel: tuple) -> None:
    ch, ids = long_channel
    r = api_a.history(ch, limit=str(10**30))
    assert r.status_code in (200, 400), (r.status_code, r.text)
    if r.status_code == 200:
        assert [m["id"] for m in r.json()["messages"]] == ids[:100]
