"""The ``cohrt-sync`` command line."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

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
    server = LocalServer(
        keys=args.key or (),
        provision=args.provision,
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        tier=args.tier,
        max_payload=args.max_payload,
        live_ids=not args.no_live_ids,
        rtk_delay_ms=args.rtk_delay_ms,
    )
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
    try:
        while not stop.wait(0.5):
            pass
    finally:
        print("stopping…", file=sys.stderr, flush=True)
        server.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``cohrt-sync`` command."""
    parser = argparse.ArgumentParser(
        prog="cohrt-sync",
        description="Realtime channels, presence and history from sync Python; a local server.",
    )
    parser.add_argument("--version", action="version", version=f"cohrt-sync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

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
        metavar="KEY",
        help="application key to accept, one tenant each (repeatable; default: one random key)",
    )
    serve.add_argument(
        "--provision", action="store_true", help="provision realtime for every key at start"
    )
    serve.add_argument(
        "--tier",
        default="unlimited",
        help="rate-limit tier: unlimited (default), ephemeral, free, plus, pro",
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
        "--no-live-ids",
        action="store_true",
        help="omit message ids from live frames and acks, like the spec's example frames",
    )
    serve.set_defaults(func=_serve)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``cohrt-sync`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
