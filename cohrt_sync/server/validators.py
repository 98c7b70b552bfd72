"""Reading and checking request input: the JSON body, names, payloads and
integer query parameters, each refused with the API's 400 or 413."""

from __future__ import annotations

import asyncio
import re
from typing import Any, Dict, Optional

from aiohttp import web

from ._json import dumps, parse_json
from .connguard import read_body
from .core import CORE, Core
from .errors import ApiError

#: Larger integers can't be bound to an SQLite parameter.
SQLITE_MAX_INT = 2**63 - 1
MAX_CHANNEL = 256
MAX_EVENT = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


async def read_object(request: web.Request) -> Dict[str, Any]:
    """The request body as a JSON object, or a 400."""
    readers = request.app[CORE].body_readers
    task = asyncio.current_task()
    if task is not None:
        readers.add(task)
    try:
        raw = await read_body(request, request.app[CORE].config.body_timeout)
    finally:
        readers.discard(task)
    if not raw.strip():
        return {}
    try:
        body = parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def check_channel(channel: Any) -> str:
    """A channel name: a non-empty string of at most 256 characters, no controls."""
    if not isinstance(channel, str) or not channel:
        raise ApiError(400, '"channel" is required and must be a non-empty string')
    if len(channel) > MAX_CHANNEL:
        raise ApiError(400, f'"channel" is longer than {MAX_CHANNEL} characters')
    if _CONTROL.search(channel):
        raise ApiError(400, '"channel" must not contain control characters')
    return channel


def check_event(event: Any) -> str:
    """An event name; missing or null means ``message``."""
    if event is None:
        return "message"
    if not isinstance(event, str) or not event or len(event) > MAX_EVENT:
        raise ApiError(400, f'"event" must be a non-empty string of at most {MAX_EVENT} characters')
    return event


def check_persist(persist: Any) -> bool:
    """``persist`` defaults to true and must be a boolean."""
    if persist is None:
        return True
    if not isinstance(persist, bool):
        raise ApiError(400, '"persist" must be a boolean')
    return persist


def encode_data(core: Core, data: Any) -> str:
    """``data`` as compact JSON, refused if over the payload limit."""
    try:
        text = dumps(data)
    except (RecursionError, ValueError):
        raise ApiError(400, '"data" is not encodable JSON') from None
    limit = core.config.max_payload
    # A character is 1 to 4 bytes of UTF-8: most messages are settled by
    # their length alone, without encoding them.
    if 4 * len(text) <= limit:
        return text
    size = len(text.encode("utf-8"))
    if size > limit:
        raise ApiError(413, f"Message too large: {size} bytes (max {limit})")
    return text


#: A query integer: plain ASCII decimal digits, with a ``-`` only so that a
#: negative can be refused by name. ``int()`` would also take ``1_0``, ``+3``,
#: surrounding spaces and non-ASCII digits.
_QUERY_INT = re.compile(r"-?[0-9]+", re.ASCII)


def int_param(request: web.Request, name: str, default: int, lo: int, hi: Optional[int]) -> int:
    """Query parameter ``name`` as an integer of at least ``lo``, clamped to ``hi``."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not _QUERY_INT.fullmatch(raw):
        raise ApiError(400, f'"{name}" must be an integer in plain decimal digits')
    # Bounded before parsing: no need to turn thousands of digits into an int.
    value = int(raw) if len(raw) <= 20 else (-1 if raw[0] == "-" else SQLITE_MAX_INT + 1)
    if value < lo:
        raise ApiError(400, f'"{name}" must be at least {lo}')
    if value > SQLITE_MAX_INT:
        raise ApiError(400, f'"{name}" must be at most {SQLITE_MAX_INT}')
    return min(value, hi) if hi is not None else value


__all__ = [
    "check_channel",
    "check_event",
    "check_persist",
    "encode_data",
    "int_param",
    "read_object",
]
