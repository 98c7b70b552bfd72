"""Listening on a channel, shared by ``cohrt-sync listen`` and the web frameworks' bot commands.

:class:`EventPrinter` prints what happens on a channel as JSON lines;
:func:`entry_point_selection` turns ``--plugin NAME``/``--plugins`` into the
client's ``entry_points``; :func:`subscribe_and_announce` subscribes and
prints the ``subscribed`` line. :func:`run_bot` is the whole of a bot
command (``manage.py cohrt_listen``, ``flask cohrt listen``): subscribe,
announce, run the hooks until SIGTERM or Ctrl-C, close.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any, List, Optional, Protocol, Union

import attrs

from ..hookspecs import hookimpl

__all__ = [
    "PLUGINS_HELP",
    "PLUGIN_HELP",
    "EventPrinter",
    "TextOut",
    "add_plugin_arguments",
    "entry_point_selection",
    "print_json",
    "run_bot",
    "subscribe_and_announce",
]


class TextOut(Protocol):
    """Where lines go: a text file, or Django's ``OutputWrapper``."""

    def write(self, text: str) -> Any:
        """Write ``text``."""
        ...

    def flush(self) -> None:
        """Flush what was written."""
        ...


def _line(text: str, out: TextOut) -> None:
    out.write(text + "\n")
    out.flush()


def print_json(value: Any, file: Optional[TextOut] = None) -> None:
    """Print ``value`` as one line of JSON (sorted keys), flushed.

    :param value: a JSON value.
    :param file: where to; stdout when None.
    """
    _line(json.dumps(value, ensure_ascii=False, sort_keys=True), file or sys.stdout)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


#: What ``--plugin NAME`` and ``--plugins`` say, in every command that loads plugins.
PLUGIN_HELP = (
    "load this installed plugin (repeatable; `cohrt-sync plugins` lists them)."
    " By default none is loaded"
)
PLUGINS_HELP = "load every installed plugin"


def add_plugin_arguments(parser: Any) -> None:
    """Add ``--plugin NAME`` (repeatable) and ``--plugins`` to an argparse parser.

    The values go to :func:`entry_point_selection` as ``plugin`` and ``all_plugins``.

    :param parser: the ``cohrt-sync`` subcommand's or ``manage.py`` command's parser.
    """
    parser.add_argument("--plugin", action="append", metavar="NAME", help=PLUGIN_HELP)
    parser.add_argument("--plugins", dest="all_plugins", action="store_true", help=PLUGINS_HELP)


def entry_point_selection(plugin: Optional[List[str]], all_plugins: bool) -> Union[bool, List[str]]:
    """The client's ``entry_points`` for ``--plugin NAME`` (repeatable) and ``--plugins``.

    :param plugin: the names given, or None.
    :param all_plugins: ``--plugins`` was given.
    """
    return True if all_plugins else (plugin or False)


class EventPrinter:
    """Prints a channel's events: JSON lines on ``out``, connection news on ``err`` too.

    :param out: where the JSON lines go (stdout when None).
    :param err: where the news lines go (stderr when None).
    """

    def __init__(self, out: Optional[TextOut] = None, err: Optional[TextOut] = None) -> None:
        self.out = out
        self.err = err

    @hookimpl
    def on_message(self, channel: Any, message: Any) -> None:
        """Print ``{"type": "message", ...the message}``."""
        print_json({"type": "message", **attrs.asdict(message)}, self.out)

    @hookimpl
    def on_join(self, channel: Any, user: Any) -> None:
        """Print ``{"type": "join", "channel", "user"}``."""
        print_json({"type": "join", "channel": channel.name, "user": attrs.asdict(user)}, self.out)

    @hookimpl
    def on_leave(self, channel: Any, user: Any) -> None:
        """Print ``{"type": "leave", "channel", "user"}``."""
        print_json({"type": "leave", "channel": channel.name, "user": attrs.asdict(user)}, self.out)

    @hookimpl
    def on_disconnected(self, channel: Any, reason: str) -> None:
        """Print the drop, and say on ``err`` that a reconnect follows."""
        at = _now()
        print_json(
            {"type": "disconnected", "channel": channel.name, "reason": reason, "at": at}, self.out
        )
        news = f"{at} disconnected from {channel.name}: {reason}; reconnecting"
        _line(news, self.err or sys.stderr)

    @hookimpl
    def on_reconnected(self, channel: Any, attempts: int, caught_up: int) -> None:
        """Print the reconnect, and say on ``err`` how much was caught up."""
        at = _now()
        print_json(
            {
                "type": "reconnected",
                "channel": channel.name,
                "attempts": attempts,
                "caught_up": caught_up,
                "at": at,
            },
            self.out,
        )
        _line(
            f"{at} reconnected to {channel.name} after {attempts} attempt(s);"
            f" caught up {caught_up} missed message(s)",
            self.err or sys.stderr,
        )


def subscribe_and_announce(
    client: Any, channel: str, user_id: str, name: Optional[str], out: Optional[TextOut] = None
) -> Any:
    """Subscribe ``client`` to ``channel``, then print the ``{"type": "subscribed"}`` line.

    :param client: a :class:`~cohrt_sync.Client`, its plugins registered.
    :param channel: the channel.
    :param user_id: who to connect as (others see it in presence).
    :param name: the display name, or None.
    :param out: where the line goes (stdout when None).
    :returns: the :class:`~cohrt_sync.Channel`.
    """
    ch = client.subscribe(channel, user_id=user_id, name=name)
    presence = [attrs.asdict(u) for u in ch.presence.values()]
    print_json({"type": "subscribed", "channel": ch.name, "presence": presence}, out)
    return ch


def run_bot(
    client: Any,
    channel: str,
    user_id: str,
    name: Optional[str],
    *,
    verbose: bool = False,
    out: Optional[TextOut] = None,
    err: Optional[TextOut] = None,
) -> None:
    """Subscribe, print the ``subscribed`` line, and run the hooks until SIGTERM, Ctrl-C or close.

    Every way out closes ``client``: the channel's ``on_closed`` hooks run and
    its socket sends a close frame, so the other members see the bot leave.
    SIGTERM is caught where the process set no handler of its own
    (:meth:`cohrt_sync.Client.run_forever`); then this returns normally.

    :param client: a :class:`~cohrt_sync.Client` with the bot's plugins.
    :param channel: the channel.
    :param user_id: who to connect as.
    :param name: the display name, or None.
    :param verbose: also print every event as a JSON line (:class:`EventPrinter`).
    :param out: where the lines go (stdout when None).
    :param err: where connection news goes with ``verbose`` (stderr when None).
    :raises CohrtError: the subscription failed (the client is closed).
    """
    try:
        if verbose:
            client.register(EventPrinter(out, err))
        subscribe_and_announce(client, channel, user_id, name, out)
    except BaseException:  # a refusal, or Ctrl-C while subscribing: close what was opened
        client.close()
        raise
    client.run_forever()
