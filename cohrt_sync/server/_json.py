"""JSON for the wire: compact encoding of every frame and response, strict decoding of
every body and frame."""

from __future__ import annotations

import json
import math
import re
from typing import Any

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: Any) -> str:
    """Encode ``value`` compactly; NaN/Infinity are refused (not valid JSON)."""
    return _encoder.encode(value)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


# One decoder for every frame: json.loads with hooks would build a new one per call.
_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_json(text: str) -> Any:
    """Strict JSON: what every other JSON parser (and SQLite, and UTF-8) accepts.

    Refuses NaN/Infinity, numbers that overflow a double, nesting too deep to
    decode, and lone UTF-16 surrogates, which can't be encoded as UTF-8.

    :raises ValueError: for any of those, or for malformed JSON.
    """
    try:
        value = _decoder.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text):
        # Only paid by text that escapes a surrogate; pairs re-encode fine.
        try:
            dumps(value).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            raise ValueError("JSON string holds a lone surrogate") from None
    return value
