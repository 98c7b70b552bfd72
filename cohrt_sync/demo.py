"""``cohrt-sync demo``: the whole API, end to end, on an in-process local server.

Starts :class:`~cohrt_sync.server.LocalServer` on a free loopback port with a
temporary database and walks through provisioning, presence, chat, typing
indicators, the DM pattern, a dropped connection caught up from history,
direct SQL and a RealtimeKit meeting, printing a transcript. No network, no
account, no setup.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Any, Callable, List, Optional, TextIO, Tuple

from .channel import Channel
from .client import Client
from .dm import accept_dm_request, dm_channel, user_channel
from .hookspecs import hookimpl
from .models import Message, User

#: How long any one step may wait for the events it expects.
STEP_DEADLINE_S = 15.0


class Transcript:
    """Prints what one user's client sees, and lets the demo wait for it.

    :param who: the user's name in the transcript.
    :param say: where lines go.
    """

    def __init__(self, who: str, say: Callable[[str], None]) -> None:
        self.who = who
        self.say = say
        self.events: queue.Queue[Tuple[str, Any]] = queue.Queue()
        self.dm_channels: List[Channel] = []

    def _line(self, channel: Channel, text: str) -> None:
        self.say(f"    [{self.who:<5}] {channel.name:<16} {text}")

    @hookimpl
    def on_message(self, channel: Channel, message: Message) -> None:
        """Show every publication this user receives."""
        ident = f"#{message.id}" if message.id is not None else "(not persisted)"
        self._line(channel, f"{message.event:<10} {_short(message.data)}  {ident}")
        self.events.put(("message", (channel.name, message)))

    @hookimpl
    def on_join(self, channel: Channel, user: User) -> None:
        """Show presence joins."""
        self._line(channel, f"join       {user.name or user.id} is here")
        self.events.put(("join", (channel.name, user)))

    @hookimpl
    def on_leave(self, channel: Channel, user: User) -> None:
        """Show presence leaves with their last-seen time."""
        # A leave synthesised by presence resync after a reconnect has no last_seen.
        seen = f"last seen {user.last_seen}" if user.last_seen else "not there when we reconnected"
        self._line(channel, f"leave      {user.name or user.id} left ({seen})")
        self.events.put(("leave", (channel.name, user)))

    @hookimpl
    def on_dm_request(self, channel: Channel, message: Message) -> None:
        """Accept DM requests: open the DM channel named in the notification."""
        dm = accept_dm_request(channel, message)
        self.dm_channels.append(dm)
        self._line(channel, f"dm_request accepted: opened {dm.name} ({len(dm.presence)} here)")
        self.events.put(("dm", dm))

    @hookimpl
    def on_disconnected(self, channel: Channel, reason: str) -> None:
        """Show drops."""
        self._line(channel, f"disconnected ({reason}); reconnecting with a fresh token")

    @hookimpl
    def on_reconnected(self, channel: Channel, attempts: int, caught_up: int) -> None:
        """Show reconnects and how much history filled the gap."""
        self._line(
            channel,
            f"reconnected after {attempts} attempt(s); {caught_up} missed message(s) "
            "caught up from history",
        )
        self.events.put(("reconnected", (channel.name, caught_up)))

    def expect(
        self, kind: str, count: int = 1, match: Optional[Callable[[Any], bool]] = None
    ) -> List[Any]:
        """Wait for ``count`` events of ``kind`` (others are skipped)."""
        got: List[Any] = []
        deadline = time.monotonic() + STEP_DEADLINE_S
        while len(got) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{self.who} did not see {count} {kind} event(s) in time")
            try:
                k, value = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if k == kind and (match is None or match(value)):
                got.append(value)
        return got


def _short(data: Any, width: int = 60) -> str:
    text = repr(data)
    return text if len(text) <= width else text[: width - 1] + "…"


def run_demo(out: TextIO = sys.stdout, rtk_delay_ms: int = 300) -> int:
    """Run the walkthrough; returns a process exit code.

    :param out: where the transcript goes.
    :param rtk_delay_ms: the local RealtimeKit's eventual-consistency delay.
    """
    try:
        from .server import LocalServer
    except ImportError as e:  # pragma: no cover - depends on the install
        print(f"the demo needs the server extra: pip install 'cohrt-sync[server]' ({e})", file=out)
        return 2

    lock = threading.Lock()

    def say(line: str = "") -> None:
        with lock:
            print(line, file=out, flush=True)

    def step(title: str) -> None:
        say()
        say(f"== {title}")

    started = time.monotonic()
    with LocalServer(provision=False, rtk_delay_ms=rtk_delay_ms) as srv:
        key = srv.key  # generated for this run; never printed
        say(f"cohrt-sync demo: local server at {srv.base_url} (temporary database)")

        alice_log, bob_log = Transcript("alice", say), Transcript("bob", say)
        server_side = Client(key=key, base_url=srv.base_url)
        alice = Client(key=key, base_url=srv.base_url, plugins=[alice_log])
        bob = Client(key=key, base_url=srv.base_url, plugins=[bob_log])
        try:
            step("1. Provision realtime (the agent's job, once)")
            info = server_side.provision(write_region="eu")
            say(
                f"    realtime {info.get('status')} in write region {info.get('write_region')}; "
                f"auto-provisioned: {', '.join(info.get('auto_provisioned') or []) or 'nothing'}"
            )

            step("2. Presence: alice, then bob, open chat:room_42")
            room = "chat:room_42"
            a_room = alice.subscribe(room, user_id="alice", name="Alice")
            say(f"    alice subscribed; presence: {sorted(a_room.presence)}")
            b_room = bob.subscribe(room, user_id="bob", name="Bob")
            say(f"    bob subscribed;   presence: {sorted(b_room.presence)}")
            alice_log.expect("join")

            step("3. Chat over the socket (persisted, acknowledged after commit)")
            ack = a_room.publish({"text": "Hi Bob!"})
            say(f"    alice's publish acknowledged: id={ack.id} at {ack.created_at_ms}")
            bob_log.expect("message", match=lambda v: v[0] == room)
            b_room.publish({"text": "Hey Alice, good to see you."})
            alice_log.expect("message", 2, match=lambda v: v[0] == room)

            step("4. Typing indicator (event 'typing', persist: false)")
            b_room.publish({"user": "Bob"}, event="typing", persist=False)
            alice_log.expect("message", match=lambda v: v[1].event == "typing")
            kept = [m.event for m in server_side.history(room)]
            say(f"    history keeps only persisted events: {kept}")

            step("5. The DM pattern: personal channels, a dm_request, a DM channel")
            alice.subscribe(user_channel("alice"), user_id="alice", name="Alice")
            bob.subscribe(user_channel("bob"), user_id="bob", name="Bob")
            dm = dm_channel("alice", "bob")
            say(f"    dm_channel('alice', 'bob') == {dm!r}; the server notifies user:bob over HTTP")
            a_dm = alice.subscribe(dm, user_id="alice", name="Alice")
            server_side.send_dm_request("alice", "bob")
            b_dm = bob_log.expect("dm")[0]
            alice_log.expect("join", match=lambda v: v[0] == dm)
            a_dm.publish({"text": "Psst, Bob: lunch at noon?"})
            bob_log.expect("message", match=lambda v: v[0] == dm)
            b_dm.publish({"text": "Sounds good."})
            alice_log.expect(
                "message", match=lambda v: v[0] == dm and v[1].data.get("text") == "Sounds good."
            )

            step("6. A dropped connection, caught up from history")
            say("    the server cuts every socket on chat:room_42; meanwhile a cron job publishes")
            srv.drop_channel(room)
            for i in range(1, 4):
                server_side.publish(room, {"text": f"build #{i} finished"}, event="message")
            # Catch-up delivers the missed messages first, then reports the reconnect.
            bob_log.expect("message", 3, match=lambda v: v[0] == room and "build" in str(v[1].data))
            alice_log.expect(
                "message", 3, match=lambda v: v[0] == room and "build" in str(v[1].data)
            )
            for log in (alice_log, bob_log):
                log.expect("reconnected", match=lambda v: v[0] == room)
            say("    both received the 3 missed messages exactly once, in order, then went live")

            step("7. Direct SQL on the tenant's database")
            rows = server_side.sql(
                "SELECT channel, count(*) AS messages FROM realtime_messages"
                " GROUP BY channel ORDER BY channel"
            )
            for row in rows:
                say(f"    {row['channel']:<16} {row['messages']} persisted message(s)")

            step("8. RealtimeKit: a video meeting through /edge/realtimekit")
            rtk = server_side.realtimekit
            meeting = rtk.create_meeting("Standup", wait_ready=True)
            say(
                f"    meeting {meeting.id} '{meeting.title}' is {meeting.status} "
                "(polled until readable: creation is eventually consistent)"
            )
            presets = [p.name for p in rtk.list_presets().items]
            say(f"    presets: {', '.join(presets)}")
            for who in ("alice", "bob"):
                p = rtk.add_participant(
                    meeting.id, name=who.title(), preset_name=presets[0], custom_participant_id=who
                )
                say(
                    f"    {who}'s participant token: {(p.token or '')[:16]}…"
                    " (hand it to the RealtimeKit SDK)"
                )

            step("9. Goodbye: bob closes; alice sees him leave")
            b_room.close()
            alice_log.expect("leave", match=lambda v: v[0] == room)
        finally:
            for c in (alice, bob, server_side):
                c.close()
    say()
    say(
        f"demo finished in {time.monotonic() - started:.1f} s; every thread joined, server stopped."
    )
    return 0
