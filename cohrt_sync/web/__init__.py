"""The realtime routes' logic, free of any web framework: Flask and Django adapt it.

A web app gives browsers three routes (token, history, publish) and the
browser client; the application key stays on the server. Everything the
frameworks share lives here and imports neither Flask nor Django:

- :class:`RealtimeRoutes`: the handlers, taking plain values (the user
  hook, the body's bytes, the query, the policy) and returning an
  :class:`Answer` (status, JSON body, headers);
- :mod:`~cohrt_sync.web.errors`: :class:`~cohrt_sync.CohrtError` to status,
  and the short text a browser reads (the detail goes to the log);
- :mod:`~cohrt_sync.web.policy`: default deny, the ``authorize`` hook, each
  user's token budget (:class:`MintBudget`);
- :mod:`~cohrt_sync.web.inputs`: what the routes accept from a browser;
- :mod:`~cohrt_sync.web.clients`: the lazily made per-process client, with
  timeouts that answer within a worker's timeout (``COHRT_TIMEOUT``);
- :mod:`~cohrt_sync.web.scripts`: ``cohrt-sync.js`` and the module it imports.

docs/flask.md and docs/django.md are the guides.
"""

from __future__ import annotations

from .answer import NO_STORE, Answer, private
from .clients import DEFAULT_TIMEOUT, ProcessClient, make_web_client, timeout_from_setting
from .errors import NotConfiguredError, RouteError, error_answer, status_for
from .policy import BUDGET_DEFAULTS, Authorize, MintBudget, budget_from_setting
from .routes import Body, LoadedUser, RealtimeRoutes, as_user, message_json
from .scripts import SCRIPTS, script_path

__all__ = [
    "BUDGET_DEFAULTS",
    "DEFAULT_TIMEOUT",
    "NO_STORE",
    "SCRIPTS",
    "Answer",
    "Authorize",
    "Body",
    "LoadedUser",
    "MintBudget",
    "NotConfiguredError",
    "ProcessClient",
    "RealtimeRoutes",
    "RouteError",
    "as_user",
    "budget_from_setting",
    "error_answer",
    "make_web_client",
    "message_json",
    "private",
    "script_path",
    "status_for",
    "timeout_from_setting",
]
