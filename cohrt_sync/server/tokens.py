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


#: Claims the server relies on, per kind of token, with their types: a token
#: lacking one (even validly signed) is refused rather than read as None.
REQUIRED_CLAIMS: Dict[str, Dict[str, type]] = {
    EDGE: {"iss": str, "tid": str, "typ": str, "exp": int},
    REALTIME: {"iss": str, "tid": str, "typ": str, "exp": int, "sub": str},
    RTK: {
        "iss": str,
        "tid": str,
        "typ": str,
        "exp": int,
        "sub": str,
        "app_id": str,
        "meeting_id": str,
        "preset_name": str,
    },
}
#: Claims that may be absent but must have this type when present.
OPTIONAL_CLAIMS: Dict[str, type] = {"iat": int, "nbf": int, "jti": str, "name": str}
#: The only header fields minted; anything else (kid, jku, x5u, jwk, crit, b64 …)
#: would ask the verifier to pick keys or change the signing input, so it is refused.
HEADER_FIELDS = frozenset({"alg", "typ"})
#: How far ``iat`` may lie ahead of the server's clock (a wall-clock step back
#: between a mint and a restart), in seconds.
IAT_LEEWAY_S = 60


def _check_header(token: str) -> None:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise TokenError("malformed token") from e
    if header.get("alg") != ALGORITHM:
        # Refuse alg=none and any algorithm confusion before looking further.
        raise TokenError("unsupported token algorithm")
    extra = sorted(set(header) - HEADER_FIELDS)
    if extra:
        raise TokenError(f"unsupported token header field {extra[0]!r}")
    if header.get("typ", "JWT") != "JWT":
        raise TokenError("unsupported token header type")


def unverified_tenant(token: str) -> str:
    """The tenant a token claims, read *before* verification to pick its secret."""
    _check_header(token)
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as e:
        raise TokenError("malformed token") from e
    tenant = claims.get("tid")
    if not isinstance(tenant, str):
        raise TokenError("token names no tenant")
    return tenant


_TYPE_NAMES = {int: "an integer", str: "a string"}


def _is(value: Any, kind: type) -> bool:
    # bool is an int to Python, never a timestamp here.
    return isinstance(value, kind) and not isinstance(value, bool)


def check_claims(claims: Dict[str, Any], typ: str, now: float) -> None:
    """Refuse a verified payload that lacks a claim of its kind, types one wrongly,
    or is of another kind, expired or not yet valid on the server's clock ``now``.

    :raises TokenError: saying which claim is wrong.
    """
    required = REQUIRED_CLAIMS[typ]
    for name in required:
        if name not in claims:
            raise TokenError(f'the token has no "{name}" claim')
    for name, kind in {**OPTIONAL_CLAIMS, **required}.items():
        if name not in claims:
            continue
        value = claims[name]
        if not _is(value, kind):
            raise TokenError(f'the token\'s "{name}" claim must be {_TYPE_NAMES[kind]}')
        if name in required and kind is str and not value:
            raise TokenError(f'the token\'s "{name}" claim is empty')
    if claims["typ"] != typ:
        raise TokenError(f"not {'an' if typ[0] in 'aeiou' else 'a'} {typ} token")
    if claims["exp"] <= now:
        raise TokenError("token expired")
    if "nbf" in claims and claims["nbf"] > now:
        raise TokenError("token not valid yet")
    if "iat" in claims and claims["iat"] > now + IAT_LEEWAY_S:
        raise TokenError("token issued in the future")


def verify(token: str, secret: bytes, *, typ: str, now: float) -> Claims:
    """Verify header, signature, issuer, then every claim of kind ``typ`` against
    the server's clock ``now``.

    Time claims are checked here rather than by PyJWT so tests can move the
    server's clock instead of sleeping.
    """
    _check_header(token)
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["iss"],
            },
        )
    except jwt.PyJWTError as e:
        raise TokenError("invalid token") from e
    check_claims(claims, typ, now)
    known = {"iss", "tid", "typ", "iat", "exp", "jti", "sub", "name", "nbf"}
    return Claims(
        tenant=claims["tid"],
        typ=typ,
        exp=claims["exp"],
        sub=claims.get("sub"),
        name=claims.get("name"),
        extra={k: v for k, v in claims.items() if k not in known},
    )
