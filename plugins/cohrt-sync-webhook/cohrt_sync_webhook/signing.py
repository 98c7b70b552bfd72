"""The ``Cohrt-Signature`` header: HMAC-SHA256 over a timestamp and the body.

The header reads ``t=<unix seconds>,v1=<hex digest>`` where the digest is
``HMAC-SHA256(secret, b"<t>." + body)``. Signing the timestamp with the body
lets a receiver refuse replays: it checks the digest, then that ``t`` is
recent (:func:`verify`).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Optional, Union

__all__ = ["SIGNATURE_HEADER", "sign", "verify"]

#: The request header carrying the signature.
SIGNATURE_HEADER = "Cohrt-Signature"


def _key(secret: Union[str, bytes]) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: Union[str, bytes], body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp``.

    :param secret: the shared secret.
    :param body: the exact request body.
    :param timestamp: unix seconds.
    """
    mac = hmac.new(_key(secret), b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(
    secret: Union[str, bytes],
    body: bytes,
    header: Optional[str],
    *,
    tolerance: float = 300.0,
    now: Optional[float] = None,
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of now.

    For receivers: pass the raw body bytes, before any JSON parsing.

    :param secret: the shared secret.
    :param body: the exact request body received.
    :param header: the ``Cohrt-Signature`` header value (``None`` if absent).
    :param tolerance: how old (or how far ahead) the timestamp may be, in seconds.
    :param now: unix seconds (default ``time.time()``).
    """
    if not header:
        return False
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    stamp, given = fields.get("t", ""), fields.get("v1", "")
    if not stamp.isdigit() or not given:
        return False
    expected = sign(secret, body, int(stamp)).split("v1=", 1)[1]
    current = time.time() if now is None else now
    return hmac.compare_digest(expected, given) and abs(current - int(stamp)) <= tolerance
