"""One Flask app's realtime state: its lazily made client and its routes, in ``app.extensions``.

Made by :meth:`cohrt_sync.flask.Cohrt.init_app` and read by the blueprint
(:mod:`cohrt_sync.flask.routes`), which therefore never imports the
extension. The state is given what it needs: the app's config, and two
callables that read the extension's current user loader and policy (a
decorator may set them after ``init_app``).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional

from ..client import Client
from ..web import (
    LoadedUser,
    MintBudget,
    ProcessClient,
    RealtimeRoutes,
    budget_from_setting,
    make_web_client,
    timeout_from_setting,
)
from ..web.policy import Authorize

__all__ = ["HOW_TO_SET_POLICY", "AppState"]

#: How the 403 without a policy tells a Flask app to set one.
HOW_TO_SET_POLICY = (
    "set one with @cohrt.authorize or Cohrt(app, authorize=...); docs/flask.md, Channel policy"
)


class AppState:
    """One app's realtime state: its client (made on first use, once per process) and routes.

    :param config: the app's config (``COHRT_*`` settings, defaults filled in).
    :param load_user: returns who is logged in (the extension's ``user_loader``).
    :param policy: returns the extension's ``authorize``, or None.
    :raises ValueError: ``COHRT_USER_TOKEN_BUDGET`` or ``COHRT_TIMEOUT`` is not valid.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        load_user: Callable[[], LoadedUser],
        policy: Callable[[], Optional[Authorize]],
    ) -> None:
        self.config = config
        self.load_user = load_user
        self.policy = policy
        self.timeout = timeout_from_setting(config.get("COHRT_TIMEOUT"))
        #: Each user's allowance of connection tokens (None: no per-user limit).
        self.mint_budget: Optional[MintBudget] = budget_from_setting(
            config.get("COHRT_USER_TOKEN_BUDGET")
        )
        self.clients = ProcessClient(self._make_client)
        self.routes = RealtimeRoutes(
            self.clients.get,
            token_ttl=lambda: int(config["COHRT_TOKEN_TTL"]),
            mint_budget=self.mint_budget,
            how_to_set_policy=HOW_TO_SET_POLICY,
        )

    @property
    def _client(self) -> Optional[Client]:
        # The client made so far in this process (a test checks that an app
        # is built without one).
        return self.clients.current

    def client(self) -> Client:
        """The app's client, made now if there is none in this process.

        :raises NotConfiguredError: no key in the config or the environment.
        """
        return self.clients.get()

    def _make_client(self) -> Client:
        # Read when first used, so a key set in the config after init_app counts.
        cfg = self.config
        return make_web_client(
            cfg.get("COHRT_KEY") or os.environ.get("COHRT_KEY"),
            cfg.get("COHRT_BASE_URL") or os.environ.get("COHRT_BASE_URL"),
            timeout=self.timeout,
            options=cfg.get("COHRT_CLIENT_OPTIONS"),
            where="the app config",
        )

    def close(self) -> None:
        """Close this process's client now."""
        self.clients.close()
