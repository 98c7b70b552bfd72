"""Compact JSON encoding shared by every frame and response."""

from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: Any) -> str:
    """Encode ``value`` compactly; NaN/Infinity are refused (not valid JSON)."""
    return _encoder.encode(value)
