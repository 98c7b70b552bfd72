"""What a route answers, before any framework makes a response of it: status, JSON body, headers."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

import attrs

__all__ = ["NO_STORE", "Answer", "private"]

#: Every route's answer carries tokens or private history: no cache keeps it.
NO_STORE = "private, no-store, max-age=0"


@attrs.frozen
class Answer:
    """A route's answer: the adapter turns it into its framework's JSON response."""

    #: The HTTP status.
    status: int
    #: The JSON body.
    body: Dict[str, Any]
    #: Headers to set (``Cache-Control``, ``Retry-After``).
    headers: Mapping[str, str] = attrs.field(factory=dict)


def private(
    body: Dict[str, Any], status: int = 200, headers: Optional[Mapping[str, str]] = None
) -> Answer:
    """An answer no cache may keep (``Cache-Control: private, no-store``).

    :param body: the JSON body.
    :param status: the HTTP status.
    :param headers: more headers.
    """
    return Answer(status, body, {"Cache-Control": NO_STORE, **(headers or {})})
