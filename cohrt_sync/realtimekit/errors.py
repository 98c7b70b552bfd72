"""The errors of RealtimeKit calls, and how a failed response becomes one.

Errors answered by RealtimeKit itself (Cloudflare's ``{"success": false,
"errors": [...]}`` envelope) become :class:`RealtimeKitError` subclasses keeping
the upstream ``code`` and ``message``; the class follows the HTTP status, from
the same table as every other client error
(:func:`cohrt_sync.errors.error_class`).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import attrs

from ..errors import (
    AuthError,
    BadRequestError,
    CohrtError,
    CohrtTimeoutError,
    NotFoundError,
    NotProvisionedError,
    RateLimitedError,
    ServerError,
    error_class,
)

__all__ = [
    "MeetingNotReadyError",
    "RealtimeKitBadRequestError",
    "RealtimeKitError",
    "RealtimeKitNotFoundError",
    "RealtimeKitServerError",
    "UpstreamError",
]


@attrs.frozen
class UpstreamError:
    """One entry of the envelope's ``errors`` list.

    :param code: the upstream error code (a number on Cloudflare's API).
    :param message: the upstream message, e.g. ``"ResourceNotFound: ..."``.
    """

    code: Any
    message: str


class RealtimeKitError(CohrtError):
    """An error answered by RealtimeKit itself (Cloudflare's envelope).

    :param message: the full message.
    :param errors: every entry of the envelope's ``errors``.
    :param kwargs: passed on (``status_code``, ``status``, ``retry_after``).
    """

    def __init__(
        self, message: str, *, errors: Sequence[UpstreamError] = (), **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.errors: Tuple[UpstreamError, ...] = tuple(errors)

    @property
    def upstream_code(self) -> Any:
        """The first error's ``code``, or None."""
        return self.errors[0].code if self.errors else None

    @property
    def upstream_message(self) -> Optional[str]:
        """The first error's ``message``, or None."""
        return self.errors[0].message if self.errors else None


class RealtimeKitNotFoundError(RealtimeKitError, NotFoundError):
    """``ResourceNotFound``: no such meeting or participant (yet: see the poll)."""


class RealtimeKitBadRequestError(RealtimeKitError, BadRequestError):
    """RealtimeKit refused the input (HTTP 400 and other 4xx)."""


class RealtimeKitServerError(RealtimeKitError, ServerError):
    """RealtimeKit failed (HTTP 5xx)."""


class MeetingNotReadyError(CohrtTimeoutError):
    """A new meeting still answered ``ResourceNotFound`` when the poll gave up.

    :param message: what happened.
    :param meeting_id: the meeting that never resolved; poll again with
        :meth:`RealtimeKit.wait_ready`.
    :param attempts: how many reads were tried.
    """

    def __init__(self, message: str, *, meeting_id: str, attempts: int) -> None:
        super().__init__(message)
        self.meeting_id = meeting_id
        self.attempts = attempts



def _upstream_errors(exc: CohrtError) -> Optional[List[UpstreamError]]:
    """The ``errors`` of Cloudflare's envelope behind ``exc``, or None if it had none."""
    body = exc.body
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
    if not isinstance(body, dict) or body.get("success") is not False:
        return None
    return _parse_errors(body.get("errors"))


def _parse_errors(raw: Any) -> List[UpstreamError]:
    out = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict):
            out.append(UpstreamError(item.get("code"), str(item.get("message") or "")))
        elif isinstance(item, str):
            out.append(UpstreamError(None, item))
    return out or [UpstreamError(None, "no details")]


#: The RealtimeKit flavour of each class of :func:`cohrt_sync.errors.error_class`.
_UPSTREAM_CLASSES: Dict[type, Type[RealtimeKitError]] = {
    NotFoundError: RealtimeKitNotFoundError,
    BadRequestError: RealtimeKitBadRequestError,
    ServerError: RealtimeKitServerError,
}


def _to_realtimekit_error(exc: CohrtError, context: str) -> CohrtError:
    """``exc`` as a :class:`RealtimeKitError` when RealtimeKit answered it."""
    if isinstance(exc, (AuthError, NotProvisionedError, RateLimitedError)):
        # Credentials, provisioning and limits are the proxy's, in its own envelope.
        return exc
    errors = _upstream_errors(exc)
    status = exc.status_code
    if errors is None or status is None:
        return exc
    cls = _UPSTREAM_CLASSES.get(error_class(status, exc.status))
    if cls is None:
        return exc
    message = f"{context} failed: " + "; ".join(e.message for e in errors)
    kwargs: Dict[str, Any] = {"errors": errors, "status_code": status, "status": exc.status}
    if cls is RealtimeKitServerError:
        kwargs["retry_after"] = getattr(exc, "retry_after", None)
    new = cls(message, **kwargs)
    new.__cause__ = exc
    return new
