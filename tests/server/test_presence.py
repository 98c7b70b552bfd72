"""Presence: subscribed list, join, leave with last_seen, per-user semantics (DESIGN §2)."""

from __future__ import annotations

import datetime as dt

from ._wire import Api, Sock, uniq, without_event


def _by_id(presence: list) -> list:
    return sorted(presence, key=lambda u: u["id"])


def _marker(api: Api, sock: Sock, tag: str) -> None:
    """Publish a marker over HTTP and assert it is the very next frame ``sock`` sees."""
    api.publish_ok(sock.channel, {"marker": tag}, persist=False)
    frame = sock.next()
    assert frame.get("data") == {"marker": tag}, f"unexpected frame before marker: {frame}"


def _parse_last_seen(value: object) -> dt.datetime:
    assert isinstance(value, str), value
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None and parsed.utcoffset() == dt.timedelta(0), value
    return parsed


def test_presence_lists_everyone_once_self_included(api_a: Api, base_url: str) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice", name="Alice"), ch) as a:
        assert a.presence == [{"id": "alice", "name": "Alice"}]
        with Sock(base_url, api_a.token("bob", name="Bob"), ch) as b:
            assert _by_id(b.presence) == [
                {"id": "alice", "name": "Alice"},
                {"id": "bob", "name": "Bob"},
            ]
            # a second socket of alice: alice still listed once
            with Sock(base_url, api_a.token("alice", name="Alice"), ch) as a2:
                assert _by_id(a2.presence) == [
                    {"id": "alice", "name": "Alice"},
                    {"id": "bob", "name": "Bob"},
                ]


def test_presence_without_name_is_null_and_ids_are_strings(api_a: Api, base_url: str) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token(42), ch) as s, Sock(base_url, api_a.token("7"), ch) as t:
        assert s.presence == [{"id": "42", "name": None}]
        assert _by_id(t.presence) == [{"id": "42", "name": None}, {"id": "7", "name": None}]
        join = without_event(s.next())
        assert join == {"action": "join", "channel": ch, "user": {"id": "7", "name": None}}


def test_join_goes_to_others_only(api_a: Api, base_url: str) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice", name="Alice"), ch) as a:
        with Sock(base_url, api_a.token(42, name="Bob"), ch) as b:
            assert without_event(a.next()) == {
                "action": "join",
                "channel": ch,
                "user": {"id": "42", "name": "Bob"},
            }
            # the joiner gets no join about itself
            _marker(api_a, b, "after-join")
            _marker(api_a, a, "after-join")


def test_leave_with_last_seen_when_last_socket_closes(api_a: Api, base_url: str) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice", name="Alice"), ch) as a:
        b = Sock(base_url, api_a.token("bob", name="Bob"), ch)
        assert a.next()["action"] == "join"
        before = dt.datetime.now(dt.timezone.utc)
        b.close()
        leave = without_event(a.next())
        after = dt.datetime.now(dt.timezone.utc)
        assert set(leave) == {"action", "channel", "user", "last_seen"}, leave
        assert leave["action"] == "leave"
        assert leave["channel"] == ch
        assert leave["user"] == {"id": "bob", "name": "Bob"}
        seen = _parse_last_seen(leave["last_seen"])
        assert before - dt.timedelta(seconds=5) <= seen <= after + dt.timedelta(seconds=5)
        # bob is gone from presence for a newcomer
        with Sock(base_url, api_a.token("carol"), ch) as c:
            assert _by_id(c.presence) == [
                {"id": "alice", "name": "Alice"},
                {"id": "carol", "name": None},
            ]


def test_second_socket_of_same_user_makes_no_join_and_no_leave(api_a: Api, base_url: str) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("bob", name="Bob"), ch) as watcher:
        a1 = Sock(base_url, api_a.token("alice", name="Alice"), ch)
        assert watcher.next()["action"] == "join"
        a2 = Sock(base_url, api_a.token("alice", name="Alice"), ch)
        _marker(api_a, watcher, "no-join")  # no second join
        a1.close()
        _marker(api_a, watcher, "no-leave")  # alice still has a socket: no leave
        a2.close()
        leave = watcher.next()
        assert leave["action"] == "leave" and leave["user"] == {"id": "alice", "name": "Alice"}
        _parse_last_seen(leave["last_seen"])


def test_abrupt_disconnect_still_sends_leave(api_a: Api, base_url: str) -> None:
    ch = uniq()
    with Sock(base_url, api_a.token("alice"), ch) as a:
        b = Sock(base_url, api_a.token("bob"), ch)
        assert a.next()["action"] == "join"
        b.abort()
        leave = a.next(timeout=10)
        assert leave["action"] == "leave" and leave["user"]["id"] == "bob", leave
        _parse_last_seen(leave["last_seen"])


def test_presence_is_per_channel(api_a: Api, base_url: str) -> None:
    c1, c2 = uniq(), uniq()
    with Sock(base_url, api_a.token("alice"), c1) as a:
        with Sock(base_url, api_a.token("bob"), c2) as b:
            assert b.presence == [{"id": "bob", "name": None}]
            _marker(api_a, a, "no-join-from-other-channel")


def test_presence_under_concurrent_joins_and_leaves(api_a: Api, base_url: str) -> None:
    """20 users join at once, 10 leave at once (one of them with two sockets): every join and
    every leave is announced exactly once, and the final presence is exact."""
    import threading

    ch = uniq()
    with Sock(base_url, api_a.token("watcher"), ch) as watcher:
        tokens = {f"u{i:02d}": api_a.token(f"u{i:02d}") for i in range(20)}
        socks: dict = {}
        lock = threading.Lock()
        barrier = threading.Barrier(21)

        def open_one(uid: str) -> None:
            barrier.wait(timeout=10)
            s = Sock(base_url, tokens[uid], ch)
            with lock:
                socks.setdefault(uid, []).append(s)

        threads = [threading.Thread(target=open_one, args=(u,)) for u in tokens]
        threads.append(threading.Thread(target=open_one, args=("u00",)))  # second socket of u00
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert sum(len(v) for v in socks.values()) == 21

        joins = [without_event(watcher.next()) for _ in range(20)]
        assert all(j["action"] == "join" for j in joins), joins
        assert sorted(j["user"]["id"] for j in joins) == sorted(tokens)

        leaving = [f"u{i:02d}" for i in range(10)]  # u00 closes both its sockets
        closers = [threading.Thread(target=s.close) for uid in leaving for s in socks[uid]]
        for t in closers:
            t.start()
        for t in closers:
            t.join(timeout=20)
        leaves = [without_event(watcher.next(timeout=10)) for _ in range(10)]
        assert all(x["action"] == "leave" for x in leaves), leaves
        assert sorted(x["user"]["id"] for x in leaves) == leaving
        _marker(api_a, watcher, "no-more-presence")

        with Sock(base_url, api_a.token("late"), ch) as late:
            want = sorted([f"u{i:02d}" for i in range(10, 20)] + ["watcher", "late"])
            assert sorted(u["id"] for u in late.presence) == want
        for uid in tokens:
            if uid not in leaving:
                for s in socks[uid]:
                    s.close()
