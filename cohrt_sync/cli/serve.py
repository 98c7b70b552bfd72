"""``cohrt-sync serve`` and ``cohrt-sync tenant``: the local server's commands and their flags."""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from .._signals import SignalReceived, raise_on_signals, sleep_until_signal
from ..server.config import Config


def serve(args: argparse.Namespace) -> int:
    try:
        from ..server import TIERS, LocalServer
        from ..server.cluster.checks import ClusterUnavailable, redact_url
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
    try:
        server = _make_server(LocalServer, args, keys, tiers, accounts)
    except (ValueError, ClusterUnavailable) as e:
        print(f"cohrt-sync serve: {e}", file=sys.stderr)
        return 2
    # Tests move a child server's clock with the hidden --clock-offset, as
    # LocalServer.advance_clock does in process, so none waits out real time.
    server.advance_clock(args.clock_offset)
    with raise_on_signals((signal.SIGTERM, signal.SIGINT), only_default=False):
        try:
            server.start()
        except OSError as e:
            print(f"cohrt-sync serve: {_bind_failure(args.host, args.port, e)}", file=sys.stderr)
            return 1
        except ClusterUnavailable as e:
            print(f"cohrt-sync serve: {e}", file=sys.stderr)
            return 1
        try:
            _announce(server, args)
            if args.cluster:
                print(f"cluster node on {redact_url(args.cluster)}", flush=True)
            sleep_until_signal()
        except SignalReceived:
            pass
        finally:
            print("stopping…", file=sys.stderr, flush=True)
            server.close()
    return 0


def _make_server(
    cls: Any, args: argparse.Namespace, keys: Any, tiers: Any, accounts: Any
) -> Any:
    """The server the flags describe (ValueError: a flag's value can't work)."""
    return cls(
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
        cluster=args.cluster,
        **{name: getattr(args, name) for _, flags in LIMIT_FLAGS for name, *_ in flags},
    )


def _bind_failure(host: str, port: int, error: OSError) -> str:
    """One line for a server that could not listen, saying what to do next."""
    where = f"{host}:{port}"
    if error.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {where}: address already in use"
            " (stop what uses it, or pass another --port; --port 0 picks a free one)"
        )
    if error.errno == errno.EACCES:
        return f"cannot listen on {where}: permission denied (use a --port above 1023)"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {where}: no such local address (check --host)"
    return f"cannot listen on {where}: {error.strerror or error}"


def _announce(server: Any, args: argparse.Namespace) -> None:
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


def account_arg(text: str) -> Any:
    name, sep, keys = text.partition("=")
    if not (name and sep and keys):
        raise argparse.ArgumentTypeError("expected NAME=KEY1,KEY2")
    return name, [k for k in keys.split(",") if k]


def tenant(args: argparse.Namespace) -> int:
    from ..server import tenantadmin

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


def positive(kind: Any, zero_ok: bool = False) -> Any:
    def parse(text: str) -> Any:
        value = kind(text)
        if value < 0 or (value == 0 and not zero_ok):
            raise argparse.ArgumentTypeError(
                f"must be {'0 or more' if zero_ok else 'positive'}, not {text}"
            )
        return value

    return parse


#: The server's settings as ``serve`` starts them; flags override them.
DEFAULTS = Config()

#: ``serve`` flags of the tenant database limits: (LocalServer keyword, type,
#: whether 0 means automatic, help). Their defaults are Config's.
DB_LIMIT_FLAGS = (
    ("max_db_size", int, False, "bytes each tenant database may hold (D1 free: 500 MB)"),
    ("sql_time_limit", float, False, "seconds a direct-SQL statement may take, answer included"),
    ("sql_max_value", int, False, "bytes of the largest string, BLOB or row (as D1)"),
    ("sql_max_length", int, False, "bytes of SQL text in one statement (as D1)"),
    ("sql_max_params", int, False, "bound parameters in one statement (as D1)"),
    ("sql_max_rows", int, False, "rows in one direct-SQL answer"),
    ("sql_max_result_bytes", int, False, "bytes of JSON in one answer"),
)

#: ``serve`` flags of the connection limits, in the same shape.
CONN_LIMIT_FLAGS = (
    ("header_timeout", float, False, "seconds for a new connection's request head"),
    ("body_timeout", float, False, "seconds for a whole request body"),
    ("keepalive_timeout", float, False, "seconds for an idle connection's next request"),
    ("send_timeout", float, False, "seconds for a client to take a whole response"),
    ("max_connections", int, True, "connections at once, more get 503 (0: from the fd limit)"),
    ("max_tenant_sockets", int, True, "WebSockets per tenant (0: half the connection cap)"),
    ("max_user_sockets", int, True, "WebSockets per user (0: a fifth of the tenant's, at least 2)"),
    ("user_socket_opens", int, True, "WebSocket opens per user per minute (0: from the tier)"),
    ("max_head_bytes", int, False, "bytes of one request head, more get 431"),
    ("socket_queue_bytes", int, False, "unsent bytes before a socket is dropped"),
    ("total_queue_bytes", int, False, "unsent bytes for all sockets together"),
)

LIMIT_FLAGS = (
    ("tenant database and direct-SQL limits", DB_LIMIT_FLAGS),
    ("connection limits", CONN_LIMIT_FLAGS),
)


def add_server_commands(sub: Any, formatter: Any) -> None:
    """Add ``serve`` and ``tenant`` to the ``cohrt-sync`` subcommands.

    :param sub: the parser's subparsers action.
    :param formatter: the help formatter class every command uses.
    """
    cmd_serve = sub.add_parser(
        "serve",
        help="run the local, wire-compatible Realtime server",
        formatter_class=formatter,
    )
    cmd_serve.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)"
    )
    cmd_serve.add_argument(
        "--port", type=int, default=8787, help="port (default 8787; 0 = any free)"
    )
    cmd_serve.add_argument(
        "--data-dir",
        type=Path,
        help="keep state and one SQLite file per tenant here (default: a temporary dir)",
    )
    cmd_serve.add_argument(
        "--key",
        action="append",
        metavar="KEY[:TIER]",
        help="application key to accept, one tenant each (repeatable; default: one random key);"
        " :TIER stores the tier it runs at (docs/limits.md)",
    )
    cmd_serve.add_argument(
        "--account",
        action="append",
        type=account_arg,
        metavar="NAME=KEY1,KEY2",
        help="keys that share per-minute and monthly buckets at claimed tiers (repeatable)",
    )
    cmd_serve.add_argument(
        "--provision", action="store_true", help="provision realtime for every key at start"
    )
    cmd_serve.add_argument(
        "--tier",
        default=DEFAULTS.tier,
        help="rate-limit tier of keys without one: unlimited (default), ephemeral, free, plus, pro",
    )
    cmd_serve.add_argument(
        "--max-payload",
        type=int,
        default=DEFAULTS.max_payload,
        help="largest message data in bytes",
    )
    cmd_serve.add_argument(
        "--rtk-delay-ms",
        type=int,
        default=DEFAULTS.rtk_delay_ms,
        help="how long a new RealtimeKit meeting answers 404 (eventual consistency)",
    )
    cmd_serve.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="what to log on stderr (default warning; info adds the access log)",
    )
    cmd_serve.add_argument(
        "--cluster",
        metavar="REDIS_URL",
        help="serve as one node of a cluster on this Redis (redis://HOST:PORT/DB);"
        " every node gets the same URL and --data-dir (docs/cluster.md)",
    )
    cmd_serve.add_argument(
        "--no-live-ids",
        action="store_true",
        help="omit message ids from live frames and acks, like the spec's example frames",
    )
    # For tests only: seconds added to the server's clock (token expiry,
    # per-minute windows, the month of monthly caps).
    cmd_serve.add_argument("--clock-offset", type=float, default=0.0, help=argparse.SUPPRESS)
    for title, flags in LIMIT_FLAGS:
        group = cmd_serve.add_argument_group(title)
        for name, kind, zero_is_auto, text in flags:
            parse = positive(kind, zero_ok=zero_is_auto)
            flag = "--" + name.replace("_", "-")
            group.add_argument(
                flag, type=parse, default=getattr(DEFAULTS, name), metavar="N", help=text
            )
    cmd_serve.set_defaults(func=serve)

    cmd_tenant = sub.add_parser(
        "tenant",
        help="claim a tier for a key, or lift its pause, in a data dir (docs/limits.md)",
        formatter_class=formatter,
    )
    actions = cmd_tenant.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for name, text in (
        ("claim", "run a key at a claimed tier (lifts an ephemeral pause)"),
        ("unpause", "lift a paused key's pause; its ephemeral caps count from zero"),
    ):
        cmd = actions.add_parser(name, help=text, formatter_class=formatter)
        cmd.add_argument("tenant_key", metavar="KEY", help="the tenant's application key")
        cmd.add_argument(
            "--data-dir", type=Path, required=True, help="the server's data dir (may be running)"
        )
        if name == "claim":
            cmd.add_argument(
                "--tier", required=True, choices=["free", "plus", "pro"], help="the tier to run at"
            )
            cmd.add_argument("--account", default=None, help="share this account's buckets")
        cmd.set_defaults(func=tenant)
