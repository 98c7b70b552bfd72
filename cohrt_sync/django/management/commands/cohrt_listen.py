"""``manage.py cohrt_listen CHANNEL --plugin NAME``: one subscription running its plugins' hooks.

The supported way to run a bot beside a Django site: one process, not one
per web worker (a bot started in each worker answers once per worker). It
uses the project's key and base URL, loads only the installed plugins
named (``--plugin``, repeatable) or all of them (``--plugins``), prints
the ``subscribed`` line, and runs until SIGTERM or Ctrl-C, then closes
cleanly (the channel's ``on_closed`` fires, the others see it leave) and
exits 0. ``-v 2`` also prints every event as a JSON line, as
``cohrt-sync listen`` does.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....cli.listen import add_plugin_arguments, entry_point_selection, run_bot
from ....errors import CohrtError
from ....web.clients import configured_client
from ...conf import setting


class Command(BaseCommand):
    """Subscribe to a channel and run the named plugins' hooks until SIGTERM."""

    help = (
        "Subscribe to CHANNEL and run the hooks of the installed plugins named with --plugin"
        " (or all with --plugins) until SIGTERM or Ctrl-C; then close cleanly and exit 0."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """The channel, the plugins, and who to connect as."""
        parser.add_argument("channel", help="the channel to subscribe to")
        add_plugin_arguments(parser)
        parser.add_argument(
            "--user-id",
            default="cohrt-sync-bot",
            help="who to connect as; others see it in presence",
        )
        parser.add_argument("--name", default=None, help="display name in presence")

    def handle(self, *args: Any, **options: Any) -> None:
        """Listen until SIGTERM or Ctrl-C."""
        client_options = dict(setting("COHRT_CLIENT_OPTIONS") or {})
        client_options["entry_points"] = entry_point_selection(
            options["plugin"], options["all_plugins"]
        )
        try:
            client = configured_client(
                setting("COHRT_KEY"), setting("COHRT_BASE_URL"), client_options,
                where="settings.py",
            )  # fmt: skip
            run_bot(
                client, options["channel"], options["user_id"], options["name"],
                verbose=options["verbosity"] >= 2, out=self.stdout, err=self.stderr,
            )  # fmt: skip
        except CohrtError as e:
            raise CommandError(str(e).splitlines()[0]) from None
