"""The project's channel policy (``COHRT_AUTHORIZE``), and a user hook tests may switch to."""

from typing import Any, List, Optional, Set, Tuple

#: (channel, action) pairs refused; tests add to it.
REFUSED: Set[Tuple[str, str]] = set()
#: Every question asked: (user id, channel, action).
ASKED: List[Tuple[str, str, str]] = []


def may_use(request: Any, user: Any, channel: str, action: str) -> bool:
    """Every channel but those a test refused; rooms are ``room:...``."""
    assert request.method in ("GET", "POST")
    ASKED.append((user.id, channel, action))
    return (channel, action) not in REFUSED


def from_header(request: Any) -> Optional[Tuple[str, str]]:
    """A ``COHRT_USER`` hook: the user an ``X-User`` header names (for one test)."""
    uid = request.headers.get("X-User")
    return (uid, f"User {uid}") if uid else None
