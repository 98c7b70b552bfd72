"""cohrt-sync-dm end to end: DM requests over a real LocalServer, accepted by policy."""

from __future__ import annotations

import threading
import time
from typing import Any, List

import pytest
from cohrt_sync_dm import DmAcceptor

import cohrt_sync


class Inbox:
    """Records what the app sees on DM channels."""

    def __init__(self) -> None:
        self.messages: List[Any] = []
        self.closed: List[str] = []
        self.lock = threading.Lock()

    @cohrt_sync.hookimpl
    def on_message(self, channel: Any, message: cohrt_sync.Message) -> None:
        if channel.name.startswith("dm:"):
            with self.lock:
                self.messages.append((channel.name, message.data, threading.current_thread().name))

    @cohrt_sync.hookimpl
    def on_closed(self, channel: Any) -> None:
        self.closed.append(channel.name)

    def texts(self, name: str) -> List[Any]:
        with self.lock:
            return [data["text"] for ch, data, _ in self.messages if ch == name]


def test_entry_point_dm_accepts_by_allow_list_delivers_history_and_closes_when_idle(
    cohrt_server: Any, cohrt_key: str, monkeypatch: pytest.MonkeyPatch, wait_for: Any
) -> None:
    monkeypatch.setenv("COHRT_DM_ALLOW", "1, 2")
    monkeypatch.setenv("COHRT_DM_HISTORY", "2")
    monkeypatch.setenv("COHRT_DM_IDLE_SECONDS", "0.4")
    inbox = Inbox()
    base = dict(key=cohrt_key, base_url=cohrt_server.base_url)
    with cohrt_sync.Client(**base) as backend, \
            cohrt_sync.Client(**base, entry_points=["dm"], plugins=[inbox]) as bob:
        for text in ("old", "older-but-newer", "latest"):
            backend.publish("dm:1_42", {"text": text})
        bob.subscribe(cohrt_sync.user_channel(42), user_id=42, name="Bob")
        backend.send_dm_request(from_user=7, to_user=42)  # not on the allow-list
        backend.publish("user:42", {"from": "1", "dm_channel": "dm:1_99"}, event="dm_request")
        backend.send_dm_request(from_user=1, to_user=42)
        wait_for(lambda: inbox.texts("dm:1_42") == ["older-but-newer", "latest"])
        backend.publish("dm:1_42", {"text": "live"})
        wait_for(lambda: inbox.texts("dm:1_42")[-1:] == ["live"])
        # History came through the DM channel's own dispatcher, before the live message.
        threads = {t for _, _, t in inbox.messages}
        assert len(threads) == 1 and threads.pop().startswith("cohrt-sync-dispatch-dm:1_42")
        assert sorted(ch.name for ch in bob.channels) == ["dm:1_42", "user:42"]
        wait_for(lambda: "dm:1_42" in inbox.closed, timeout=5)  # idle for 0.4 s: closed
        # on_closed fires on the channel's dispatcher, before close() (on the
        # idle closer's thread) has taken the channel off the client's list.
        wait_for(lambda: [ch.name for ch in bob.channels] == ["user:42"], timeout=5)
        assert inbox.texts("dm:1_42") == ["older-but-newer", "latest", "live"]
    assert not [t for t in threading.enumerate() if t.name.startswith("cohrt-sync-dm-idle-")]


def test_callback_policy_and_activity_keeps_a_dm_open(
    cohrt_server: Any, cohrt_key: str, wait_for: Any
) -> None:
    asked: List[str] = []

    def vip_only(requester: str, channel: Any, message: Any) -> bool:
        asked.append(requester)
        return requester.startswith("vip")

    acceptor = DmAcceptor(vip_only, history=0, idle_timeout=0.5)
    inbox = Inbox()
    base = dict(key=cohrt_key, base_url=cohrt_server.base_url)
    with cohrt_sync.Client(**base) as backend, \
            cohrt_sync.Client(**base, plugins=[acceptor, inbox]) as carol:
        backend.publish("dm:carol_vip_ann", {"text": "before"})
        carol.subscribe("user:carol", user_id="carol")
        backend.send_dm_request(from_user="mallory", to_user="carol")
        backend.send_dm_request(from_user="vip_ann", to_user="carol")
        dm = wait_for(lambda: acceptor.open_channels)[0]
        assert dm.name == "dm:carol_vip_ann" and asked == ["mallory", "vip_ann"]
        started = time.monotonic()
        while time.monotonic() - started < 1.0:  # chatting for twice the idle timeout
            dm.publish({"text": "hi"})
            time.sleep(0.1)
        assert not dm.closed
        wait_for(lambda: dm.closed, timeout=5)
        assert "before" not in inbox.texts("dm:carol_vip_ann")  # history=0


def test_configuration_errors_name_the_variable() -> None:
    with pytest.raises(ValueError, match="COHRT_DM_ALLOW"):
        DmAcceptor.from_env({})
    with pytest.raises(ValueError, match="COHRT_DM_HISTORY"):
        DmAcceptor.from_env({"COHRT_DM_ALLOW": "*", "COHRT_DM_HISTORY": "all"})
    with pytest.raises(ValueError, match="COHRT_DM_IDLE_SECONDS"):
        DmAcceptor.from_env({"COHRT_DM_ALLOW": "*", "COHRT_DM_IDLE_SECONDS": "10m"})
    assert DmAcceptor.from_env({"COHRT_DM_ALLOW": "*", "COHRT_DM_IDLE_SECONDS": "0"}).idle_timeout \
        is None
