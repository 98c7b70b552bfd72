"""Signed tokens: edge session bearers and WebSocket connection tokens (JWT, HS256)."""

from __future__ import annotations

import secrets
from typing import Any, Dict, Optional

import attrs
import jwt

ISSUER = "cohrt-sync-local"
ALGORITHM = "HS256"

#: ``typ`` claims keep one kind of token from being used as the other.
EDGE = "edge"
REALTIME = "realtime"
RTK = "rtk"


class TokenError(Exception):
    """A token is malformed, forged, expired, or of the wrong kind."""


@attrs.frozen
class Claims:
    """What a verified token says."""

    tenant: str
    typ: str
    exp: int
    sub: Optional[str] = None
    name: Optional[str] = None
    extra: Dict[str, Any] = attrs.field(factory=dict)


def mint(
    secret: bytes,
    *,
    tenant: str,
    typ: str,
    now: float,
    ttl: int,
    sub: Optional[str] = None,
    name: Optional[str] = None,
    extra: Optional[Dict[str, Any]] = None,
) -> str:
    """Sign a token for ``tenant`` valid for ``ttl`` seconds from ``now``."""
    claims: Dict[str, Any] = {
        "iss": ISSUER,
        "tid": tenant,
        "typ": typ,
        "iat": int(now),
        "exp": int(now) + ttl,
        "jti": secrets.token_hex(8),
    }
    if sub is not None:
        claims["sub"] = sub
    if name is not None:
        claims["name"] = name
    if extra:
        claims.update(extra)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def unverified_tenant(token: str) -> str:
    """The tenant a token claims, read *before* verification to pick its secret."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise TokenError("malformed token") from e
    if header.get("alg") != ALGORITHM:
        # Refuse alg=none and any algorithm confusion before looking further.
        raise TokenError("unsupported token algorithm")
    tenant = claims.get("tid")
    if not isinstance(tenant, str):
        raise TokenError("token names no tenant")
    return tenant


def verify(token: str, secret: bytes, *, typ: str, now: float) -> Claims:
    """Verify signature, kind and expiry against the server's clock ``now``.

    Expiry is checked here rather than by PyJWT so tests can move the server's
    clock instead of sleeping.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"verify_exp": False, "verify_iat": False, "require": ["exp", "tid", "typ"]},
        )
    except jwt.PyJWTError as e:
        raise TokenError("invalid token") from e
    if claims.get("typ") != typ:
        raise TokenError(f"not a {typ} token")
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= now:
        raise TokenError("token expired")
    known = {"iss", "tid", "typ", "iat", "exp", "jti", "sub", "name"}
    return Claims(
        tenant=str(claims["tid"]),
        typ=typ,
        exp=exp,
        sub=claims.get("sub"),
        name=claims.get("name"),
        extra={k: v for k, v in claims.items() if k not in known},
    )
