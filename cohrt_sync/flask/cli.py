"""``flask cohrt listen CHANNEL --plugin NAME``: the app's bot, one process beside the web workers.

:meth:`cohrt_sync.flask.Cohrt.init_app` adds the ``cohrt`` command group to
the app's CLI. ``listen`` runs one subscription with the hooks of the
installed plugins named (``--plugin``, repeatable; ``--plugins`` all),
with the app's ``COHRT_KEY``, ``COHRT_BASE_URL`` and
``COHRT_CLIENT_OPTIONS``, until SIGTERM or Ctrl-C; then it closes cleanly
(the channel's ``on_closed`` fires, the others see the bot leave) and exits
0. It is ``manage.py cohrt_listen`` for Flask: a bot started in each web
worker would answer once per worker (docs/flask.md, "One bot per
deployment").
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import click
from flask import current_app
from flask.cli import AppGroup

from ..cli.listen import PLUGIN_HELP, PLUGINS_HELP, entry_point_selection, run_bot
from ..errors import CohrtError
from ..web.clients import configured_client

__all__ = ["cohrt_cli"]

#: The ``flask cohrt`` command group.
cohrt_cli = AppGroup("cohrt", help="Realtime (cohrt_sync): run the app's bot.")


def _setting(name: str) -> Optional[str]:
    # COHRT_KEY and COHRT_BASE_URL fall back to the environment, as for the routes.
    value = current_app.config.get(name) or os.environ.get(name)
    return str(value) if value else None


@cohrt_cli.command("listen")
@click.argument("channel")
@click.option("--plugin", "plugin", multiple=True, metavar="NAME", help=PLUGIN_HELP + ".")
@click.option("--plugins", "all_plugins", is_flag=True, help=PLUGINS_HELP + ".")
@click.option(
    "--user-id", default="cohrt-sync-bot", show_default=True,
    help="Who to connect as; others see it in presence.",
)  # fmt: skip
@click.option("--name", default=None, help="Display name in presence.")
@click.option("-v", "--verbose", is_flag=True, help="Also print every event as a JSON line.")
def listen(
    channel: str,
    plugin: Tuple[str, ...],
    all_plugins: bool,
    user_id: str,
    name: str,
    verbose: bool,
) -> None:
    """Subscribe to CHANNEL and run the named plugins' hooks until SIGTERM or Ctrl-C.

    Run one of these per deployment, beside the web server: not in the web
    workers, where each worker would run a bot of its own.
    """
    options = dict(current_app.config.get("COHRT_CLIENT_OPTIONS") or {})
    options["entry_points"] = entry_point_selection(list(plugin), all_plugins)
    try:
        client = configured_client(
            _setting("COHRT_KEY"), _setting("COHRT_BASE_URL"), options, where="the app config"
        )
        run_bot(client, channel, user_id, name, verbose=verbose)
    except CohrtError as e:
        raise click.ClickException(str(e).splitlines()[0]) from None
