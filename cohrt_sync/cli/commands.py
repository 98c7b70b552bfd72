"""The commands that talk to a server as a client: publish, history, listen, token, sql…"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
from typing import Any, Optional

import attrs

from .._signals import SignalReceived, raise_on_signals
from .args import VALUE_RULE, base_url_arg, value_arg
from .listen import (
    EventPrinter,
    add_plugin_arguments,
    entry_point_selection,
    print_json,
    subscribe_and_announce,
)

__all__ = ["add_client_commands", "client_base_url", "unwrap_values"]


def client_base_url(args: argparse.Namespace) -> str:
    """The base URL a client command talks to: ``--base-url``, the variable, or the default.

    :raises argparse.ArgumentTypeError: ``$COHESIVITY_BASE_URL`` has no usable scheme.
    """
    from ..client import DEFAULT_BASE_URL

    if args.base_url:
        return str(args.base_url)
    return base_url_arg(os.environ.get("COHESIVITY_BASE_URL") or DEFAULT_BASE_URL)


def _client(args: argparse.Namespace) -> Any:
    from ..client import Client

    entry_points = entry_point_selection(args.plugin, args.all_plugins)
    return Client(key=args.key, base_url=client_base_url(args), entry_points=entry_points)


def _publish(args: argparse.Namespace) -> int:
    data = args.data if not args.text else args.raw_data
    with _client(args) as client:
        ack = client.publish(args.channel, data, event=args.event, persist=not args.no_persist)
        print_json(attrs.asdict(ack))
    return 0


def _progress(args: argparse.Namespace) -> Any:
    """A progress bar on stderr when it is a terminal and ``tqdm`` is installed, else None."""
    if args.quiet or not sys.stderr.isatty():
        return None
    try:
        tqdm = importlib.import_module("tqdm").tqdm
    except ImportError:  # the bar is the [cli] extra's; without it, only the summary line
        return None
    return tqdm(desc=args.channel, unit=" msg", file=sys.stderr, dynamic_ncols=True)


def _history(args: argparse.Namespace) -> int:
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    count, last = 0, args.after
    bar = _progress(args)
    try:
        with _client(args) as client:
            for message in client.iter_history(args.channel, after=args.after):
                out.write(json.dumps(attrs.asdict(message), ensure_ascii=False) + "\n")
                count += 1
                last = message.id if message.id is not None else last
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if out is not sys.stdout:
            out.close()
    if not args.quiet:
        print(f"{count} messages exported from {args.channel} (last id {last})", file=sys.stderr)
    return 0


def _listen(args: argparse.Namespace) -> int:
    # The CLI owns this process: both signals close the channel cleanly, then
    # exit 128 + the signal's number, as a shell reports a killed job.
    with raise_on_signals((signal.SIGINT, signal.SIGTERM), only_default=False):
        try:
            with _client(args) as client:
                client.register(EventPrinter())
                subscribe_and_announce(client, args.channel, args.user_id, args.name)
                client.wait(args.seconds)
        except SignalReceived as e:
            return 128 + e.signum
    return 0


def _token(args: argparse.Namespace) -> int:
    with _client(args) as client:
        tok = client.mint_token(args.user_id, name=args.name, ttl=args.ttl)
        print_json({"token": tok.token, "expires_in": tok.expires_in})
    return 0


def _sql(args: argparse.Namespace) -> int:
    params = args.raw_params if args.text else args.params
    with _client(args) as client:
        for row in client.sql(args.query, params=params):
            print_json(row)
    return 0


def _provision(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.delete:
            print_json(client.deprovision())
        else:
            print_json(client.provision(write_region=args.write_region))
    return 0


def _keep_text(kind: Any) -> Any:
    # The parsed value travels with its text, so --text can undo the parsing.
    def parse(text: str) -> Any:
        return _Typed(kind(text), text)

    return parse


@attrs.frozen
class _Typed:
    value: Any
    text: str


def _unwrap(ns: argparse.Namespace, name: str) -> None:
    got = getattr(ns, name, None)
    if isinstance(got, list):
        setattr(ns, name, [g.value for g in got])
        setattr(ns, "raw_" + name, [g.text for g in got])
    elif isinstance(got, _Typed):
        setattr(ns, name, got.value)
        setattr(ns, "raw_" + name, got.text)


def unwrap_values(ns: argparse.Namespace) -> None:
    """Split the ``data``/``params`` arguments into their parsed and as-typed forms."""
    for name in ("data", "params"):
        _unwrap(ns, name)


def add_client_commands(sub: Any, formatter: Any) -> None:
    """Add the client commands to the ``cohrt-sync`` subcommands.

    :param sub: the parser's subparsers action.
    :param formatter: the help formatter class every command uses.
    """

    def command(name: str, help: str, description: Optional[str] = None) -> Any:
        cmd = sub.add_parser(name, help=help, description=description, formatter_class=formatter)
        cmd.add_argument(
            "--base-url",
            type=base_url_arg,
            default=None,
            help="API root (default $COHESIVITY_BASE_URL or https://cohesivity.ai);"
            " http:// is assumed for localhost and 127.x",
        )
        cmd.add_argument(
            "--key",
            default=None,
            help="application key (default $COHESIVITY_KEY; prefer the variable: "
            "arguments show in process lists)",
        )
        add_plugin_arguments(cmd)
        return cmd

    cmd = command(
        "publish",
        "publish one message over HTTP; prints the ack",
        f"Publish DATA on CHANNEL over HTTP. DATA is {VALUE_RULE}.",
    )
    cmd.add_argument("channel", help="the channel to publish on, e.g. chat:room_42")
    cmd.add_argument("data", type=_keep_text(value_arg), help=f"the message data: {VALUE_RULE}")
    cmd.add_argument("--text", action="store_true", help="publish DATA as a string, never as JSON")
    cmd.add_argument("--event", default="message", help="the event type")
    cmd.add_argument("--no-persist", action="store_true", help="don't store it in history")
    cmd.set_defaults(func=_publish)

    cmd = command("history", "export a channel's history as JSON lines")
    cmd.add_argument("channel", help="the channel whose persisted messages to export")
    cmd.add_argument("--after", type=int, default=0, help="start after this message id")
    cmd.add_argument("-o", "--output", help="write to this file instead of stdout")
    cmd.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no summary on stderr (the bar shows only on a terminal,"
        " with the [cli] extra's tqdm)",
    )
    cmd.set_defaults(func=_history)

    cmd = command(
        "listen",
        "print a channel's messages and presence as JSON lines",
        "Subscribe to CHANNEL and print what happens there as JSON lines on stdout;"
        " reconnections are also told on stderr. The API has no invisible subscriber:"
        " the other members see --user-id join. Exits 0 after --seconds, 130 on"
        " Ctrl-C, 143 on SIGTERM.",
    )
    cmd.add_argument("channel", help="the channel to subscribe to")
    cmd.add_argument(
        "--user-id", default="cohrt-sync-cli", help="who to connect as; others see it in presence"
    )
    cmd.add_argument("--name", default=None, help="display name in presence")
    cmd.add_argument(
        "--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)"
    )
    cmd.set_defaults(func=_listen)

    cmd = command("token", "mint a WebSocket connection token")
    cmd.add_argument("user_id", help="the user the token connects as (shown in presence)")
    cmd.add_argument("--name", default=None, help="display name in presence")
    cmd.add_argument("--ttl", type=int, default=300, help="token lifetime in seconds, 60 to 3600")
    cmd.set_defaults(func=_token)

    cmd = command(
        "sql",
        "run one SQL statement on the tenant database; rows as JSON lines",
        f"Run QUERY with its ? PARAMS. Each PARAM is {VALUE_RULE}.",
    )
    cmd.add_argument("query", help="one SQL statement, with ? for each parameter")
    cmd.add_argument(
        "params", nargs="*", type=_keep_text(value_arg), help=f"the ? values: {VALUE_RULE}"
    )
    cmd.add_argument("--text", action="store_true", help="pass every PARAM as a string")
    cmd.set_defaults(func=_sql)

    cmd = command("provision", "provision (or --delete) the realtime resource")
    cmd.add_argument("--write-region", default=None, help="e.g. us, eu, apac (default apac)")
    cmd.add_argument("--delete", action="store_true", help="delete realtime instead")
    cmd.set_defaults(func=_provision)
