"""The ``cohrt-sync`` command line: the parser and ``main``, which turns every error into one line.

Exit codes: 0 done; 1 the command failed (one line on stderr says what to do
next); 2 bad arguments; 130 and 143 for a ``listen`` stopped by Ctrl-C or
SIGTERM. See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .. import __version__
from .args import DefaultsFormatter
from .commands import add_client_commands, client_base_url, unwrap_values
from .errors import explain
from .plugins import list_plugins
from .serve import LIMIT_FLAGS, add_server_commands

__all__ = ["LIMIT_FLAGS", "build_parser", "main"]


def _demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``cohrt-sync`` command."""
    parser = argparse.ArgumentParser(
        prog="cohrt-sync",
        description="Realtime channels, presence and history from sync Python; a local server.",
        epilog="Each command has its own --help. Installed plugins load only with --plugin NAME"
        " or --plugins.",
    )
    parser.add_argument("--version", action="version", version=f"cohrt-sync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser(
        "demo",
        help="walk through the whole API on an in-process local server (no network, no setup)",
    )
    demo.set_defaults(func=_demo)
    add_server_commands(sub, DefaultsFormatter)
    add_client_commands(sub, DefaultsFormatter)

    plugins = sub.add_parser(
        "plugins",
        help="list the installed plugins with their distribution, version and hooks",
        formatter_class=DefaultsFormatter,
    )
    plugins.add_argument("--json", action="store_true", help="print a JSON list instead")
    plugins.set_defaults(func=list_plugins)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``cohrt-sync`` console script.

    :param argv: the arguments (default ``sys.argv[1:]``).
    :returns: the exit code.
    """
    from ..errors import CohrtError

    parser = build_parser()
    args = parser.parse_args(argv)
    unwrap_values(args)
    base_url = None
    try:
        if hasattr(args, "base_url"):
            base_url = client_base_url(args)
        result: int = args.func(args)
    except argparse.ArgumentTypeError as e:  # $COHESIVITY_BASE_URL, read after parsing
        print(f"cohrt-sync {args.command}: $COHESIVITY_BASE_URL: {e}", file=sys.stderr)
        return 2
    except (CohrtError, ImportError) as e:
        # The library's errors are already user-facing and never hold the key.
        print(explain(args.command, e, base_url), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result
