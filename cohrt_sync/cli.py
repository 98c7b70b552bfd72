"""The ``cohrt-sync`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

import attrs

from . import __version__


def _serve(args: argparse.Namespace) -> int:
    try:
        from .server import TIERS, LocalServer
    except ImportError as e:  # pragma: no cover - depends on the install
        print(
            f"cohrt-sync serve needs the server extra: pip install 'cohrt-sync[server]' ({e})",
            file=sys.stderr,
        )
        return 2
    if args.tier not in TIERS:
        print(f"unknown tier {args.tier!r}; choose from {', '.join(TIERS)}", file=sys.stderr)
        return 2
    keys, tiers = _split_key_tiers(args.key or (), TIERS)
    accounts = dict(args.account or ())
    # Only what this process prints: an embedding application configures its own logging.
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    server = LocalServer(
        keys=keys + [k for ks in accounts.values() for k in ks if k not in keys],
        tiers=tiers,
        accounts=accounts,
        provision=args.provision,
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        tier=args.tier,
        max_payload=args.max_payload,
        live_ids=not args.no_live_ids,
        rtk_delay_ms=args.rtk_delay_ms,
        **{name: getattr(args, name) for _, flags in _LIMIT_FLAGS for name, *_ in flags},
    )
    # Tests move a child server's clock with the hidden --clock-offset, as
    # LocalServer.advance_clock does in process, so none waits out real time.
    server.advance_clock(args.clock_offset)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    if server.generated_key:
        print(f"application key: {server.key}", flush=True)
    print(
        f"cohrt-sync local server listening on {server.base_url}"
        f" (data dir {server.data_dir}, tier {args.tier}"
        f"{', realtime provisioned' if args.provision else ''})",
        flush=True,
    )
    if server.limits is not None:
        lim = server.limits
        print(
            f"open-file limit {lim.nofile}: at most {lim.max_connections} connections,"
            f" {lim.max_tenant_sockets} WebSockets per tenant",
            flush=True,
        )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        print("stopping…", file=sys.stderr, flush=True)
        server.close()
    return 0


def _split_key_tiers(specs: Sequence[str], tiers: Any) -> Any:
    """``KEY`` or ``KEY:TIER`` arguments → (keys, {key: tier}); a suffix that
    names no tier is part of the key."""
    keys, named = [], {}
    for spec in specs:
        key, _, tier = spec.rpartition(":")
        if key and tier in tiers:
            named[key] = tier
        else:
            key = spec
        keys.append(key)
    return keys, named


def _account_arg(text: str) -> Any:
    name, sep, keys = text.partition("=")
    if not (name and sep and keys):
        raise argparse.ArgumentTypeError("expected NAME=KEY1,KEY2")
    return name, [k for k in keys.split(",") if k]


def _tenant(args: argparse.Namespace) -> int:
    from .server import tenantadmin

    try:
        if args.action == "claim":
            tenantadmin.claim(args.data_dir, args.tenant_key, args.tier, args.account)
            print(f"tenant claimed at the {args.tier} tier", flush=True)
        else:
            tenantadmin.unpause(args.data_dir, args.tenant_key)
            print("tenant unpause requested", flush=True)
    except (tenantadmin.NoSuchTenant, ValueError) as e:
        print(f"cohrt-sync tenant {args.action}: {e}", file=sys.stderr)
        return 1
    return 0


def _positive(kind: Any, zero_ok: bool = False) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value < 0 or (value == 0 and not zero_ok):
            raise argparse.ArgumentTypeError(
                f"must be {'0 or more' if zero_ok else 'positive'}, not {text}"
            )
        return value

    return parse


#: ``serve`` flags of the tenant database limits: (LocalServer kwarg, type, default, help).
_DB_LIMIT_FLAGS = (
    ("max_db_size", int, 500_000_000, "bytes each tenant database may hold (500 MB, D1 free)"),
    ("sql_time_limit", float, 5.0, "seconds a direct-SQL statement may take, answer included"),
    ("sql_max_value", int, 2_000_000, "bytes of the largest string, BLOB or row (D1: 2 MB)"),
    ("sql_max_length", int, 100_000, "bytes of SQL text in one statement (D1: 100 KB)"),
    ("sql_max_params", int, 100, "bound parameters in one statement (D1: 100)"),
    ("sql_max_rows", int, 100_000, "rows in one direct-SQL answer"),
    ("sql_max_result_bytes", int, 16 * 1024 * 1024, "bytes of JSON in one answer (16 MiB)"),
)

#: ``serve`` flags of the connection limits, in the same shape; 0 means automatic.
_CONN_LIMIT_FLAGS = (
    ("header_timeout", float, 10.0, "seconds for a new connection's request head"),
    ("body_timeout", float, 30.0, "seconds for a whole request body"),
    ("keepalive_timeout", float, 30.0, "seconds for an idle connection's next request"),
    ("send_timeout", float, 60.0, "seconds for a client to take a whole response"),
    ("max_connections", int, 0, "connections at once, more get 503 (0: from the fd limit)"),
    ("max_tenant_sockets", int, 0, "WebSockets per tenant (0: half the connection cap)"),
    ("socket_queue_bytes", int, 4 << 20, "unsent bytes before a socket is dropped (4 MiB)"),
    ("total_queue_bytes", int, 128 << 20, "unsent bytes for all sockets together (128 MiB)"),
)

_LIMIT_FLAGS = (
    ("tenant database and direct-SQL limits", _DB_LIMIT_FLAGS),
    ("connection limits", _CONN_LIMIT_FLAGS),
)


def _client(args: argparse.Namespace) -> Any:
    from .client import Client

    return Client(key=args.key, base_url=args.base_url)


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, sort_keys=True))


def _json_arg(text: str) -> Any:
    """A command-line argument that must be JSON."""
    try:
        return json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from None


def _publish(args: argparse.Namespace) -> int:
    with _client(args) as client:
        ack = client.publish(args.channel, args.data, event=args.event, persist=not args.no_persist)
        _print_json(attrs.asdict(ack))
    return 0


def _history(args: argparse.Namespace) -> int:
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    count, last = 0, args.after
    try:
        with _client(args) as client:
            for message in client.iter_history(args.channel, after=args.after):
                out.write(json.dumps(attrs.asdict(message), ensure_ascii=False) + "\n")
                count += 1
                last = message.id if message.id is not None else last
                if count % 500 == 0 and not args.quiet:
                    print(
                        f"\r{count} messages (last id {last})", end="", file=sys.stderr, flush=True
                    )
    finally:
        if out is not sys.stdout:
            out.close()
    if not args.quiet:
        print(f"\r{count} messages exported from {args.channel} (last id {last})", file=sys.stderr)
    return 0


def _listen(args: argparse.Namespace) -> int:
    from .hookspecs import hookimpl

    class Printer:
        @hookimpl
        def on_message(self, channel: Any, message: Any) -> None:
            _print_json({"type": "message", **attrs.asdict(message)})

        @hookimpl
        def on_join(self, channel: Any, user: Any) -> None:
            _print_json({"type": "join", "channel": channel.name, "user": attrs.asdict(user)})

        @hookimpl
        def on_leave(self, channel: Any, user: Any) -> None:
            _print_json({"type": "leave", "channel": channel.name, "user": attrs.asdict(user)})

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with _client(args) as client:
        client.register(Printer())
        ch = client.subscribe(args.channel, user_id=args.user_id, name=args.name)
        presence = [attrs.asdict(u) for u in ch.presence.values()]
        _print_json({"type": "subscribed", "channel": ch.name, "presence": presence})
        try:
            stop.wait(args.seconds)
        except KeyboardInterrupt:
            pass
    return 0


def _token(args: argparse.Namespace) -> int:
    with _client(args) as client:
        tok = client.mint_token(args.user_id, name=args.name, ttl=args.ttl)
        _print_json({"token": tok.token, "expires_in": tok.expires_in})
    return 0


def _sql(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for row in client.sql(args.query, params=args.params):
            _print_json(row)
    return 0


def _provision(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.delete:
            _print_json(client.deprovision())
        else:
            _print_json(client.provision(write_region=args.write_region))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``cohrt-sync`` command."""
    parser = argparse.ArgumentParser(
        prog="cohrt-sync",
        description="Realtime channels, presence and history from sync Python; a local server.",
    )
    parser.add_argument("--version", action="version", version=f"cohrt-sync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser(
        "demo",
        help="walk through the whole API on an in-process local server (no network, no setup)",
    )
    demo.set_defaults(func=_demo)

    serve = sub.add_parser("serve", help="run the local, wire-compatible Realtime server")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8787, help="port (default 8787; 0 = any free)")
    serve.add_argument(
        "--data-dir",
        type=Path,
        help="keep state and one SQLite file per tenant here (default: a temporary dir)",
    )
    serve.add_argument(
        "--key",
        action="append",
        metavar="KEY[:TIER]",
        help="application key to accept, one tenant each (repeatable; default: one random key);"
        " :TIER stores the tier it runs at (docs/limits.md)",
    )
    serve.add_argument(
        "--account",
        action="append",
        type=_account_arg,
        metavar="NAME=KEY1,KEY2",
        help="keys that share per-minute and monthly buckets at claimed tiers (repeatable)",
    )
    serve.add_argument(
        "--provision", action="store_true", help="provision realtime for every key at start"
    )
    serve.add_argument(
        "--tier",
        default="unlimited",
        help="rate-limit tier of keys without one: unlimited (default), ephemeral, free, plus, pro",
    )
    serve.add_argument(
        "--max-payload", type=int, default=65536, help="largest message data in bytes (64 KiB)"
    )
    serve.add_argument(
        "--rtk-delay-ms",
        type=int,
        default=300,
        help="how long a new RealtimeKit meeting answers 404 (eventual consistency)",
    )
    serve.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="what to log on stderr (default warning; info adds the access log)",
    )
    serve.add_argument(
        "--no-live-ids",
        action="store_true",
        help="omit message ids from live frames and acks, like the spec's example frames",
    )
    # For tests only: seconds added to the server's clock (token expiry,
    # per-minute windows, the month of monthly caps).
    serve.add_argument("--clock-offset", type=float, default=0.0, help=argparse.SUPPRESS)
    for title, flags in _LIMIT_FLAGS:
        group = serve.add_argument_group(title)
        for name, kind, default, text in flags:
            # 0 is "automatic" for the settings whose default is 0.
            parse = _positive(kind, zero_ok=default == 0)
            flag = "--" + name.replace("_", "-")
            group.add_argument(flag, type=parse, default=default, metavar="N", help=text)
    serve.set_defaults(func=_serve)

    tenant = sub.add_parser(
        "tenant", help="claim a tier for a key, or lift its pause, in a data dir (docs/limits.md)"
    )
    actions = tenant.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for name, text in (
        ("claim", "run a key at a claimed tier (lifts an ephemeral pause)"),
        ("unpause", "lift a paused key's pause; its ephemeral caps count from zero"),
    ):
        cmd = actions.add_parser(name, help=text)
        cmd.add_argument("tenant_key", metavar="KEY", help="the tenant's application key")
        cmd.add_argument(
            "--data-dir", type=Path, required=True, help="the server's data dir (may be running)"
        )
        if name == "claim":
            cmd.add_argument("--tier", required=True, choices=["free", "plus", "pro"])
            cmd.add_argument("--account", default=None, help="share this account's buckets")
        cmd.set_defaults(func=_tenant)

    def client_command(name: str, help: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help)
        cmd.add_argument(
            "--base-url",
            default=None,
            help="API root (default $COHESIVITY_BASE_URL or https://cohesivity.ai)",
        )
        cmd.add_argument(
            "--key",
            default=None,
            help="application key (default $COHESIVITY_KEY; prefer the variable: "
            "arguments show in process lists)",
        )
        return cmd

    cmd = client_command("publish", "publish one message over HTTP; prints the ack")
    cmd.add_argument("channel")
    cmd.add_argument("data", type=_json_arg, help="the message data, as JSON")
    cmd.add_argument("--event", default="message")
    cmd.add_argument("--no-persist", action="store_true", help="don't store it in history")
    cmd.set_defaults(func=_publish)

    cmd = client_command("history", "export a channel's history as JSON lines")
    cmd.add_argument("channel")
    cmd.add_argument("--after", type=int, default=0, help="start after this message id")
    cmd.add_argument("-o", "--output", help="write to this file instead of stdout")
    cmd.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    cmd.set_defaults(func=_history)

    cmd = client_command("listen", "print a channel's messages and presence as JSON lines")
    cmd.add_argument("channel")
    cmd.add_argument("--user-id", default="cohrt-sync-cli", help="who to connect as")
    cmd.add_argument("--name", default=None, help="display name in presence")
    cmd.add_argument(
        "--seconds", type=float, default=None, help="stop after this long (default: Ctrl-C)"
    )
    cmd.set_defaults(func=_listen)

    cmd = client_command("token", "mint a WebSocket connection token")
    cmd.add_argument("user_id")
    cmd.add_argument("--name", default=None)
    cmd.add_argument("--ttl", type=int, default=300, help="seconds, 60 to 3600")
    cmd.set_defaults(func=_token)

    cmd = client_command("sql", "run one SQL statement on the tenant database; rows as JSON lines")
    cmd.add_argument("query")
    cmd.add_argument("params", nargs="*", type=_json_arg, help="parameters, each as JSON")
    cmd.set_defaults(func=_sql)

    cmd = client_command("provision", "provision (or --delete) the realtime resource")
    cmd.add_argument("--write-region", default=None, help="e.g. us, eu, apac (default apac)")
    cmd.add_argument("--delete", action="store_true", help="delete realtime instead")
    cmd.set_defaults(func=_provision)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``cohrt-sync`` console script."""
    from .errors import CohrtError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except CohrtError as e:
        # The library's errors are already user-facing and never hold the key.
        print(f"cohrt-sync {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
