"""The plumbing under every RealtimeKit call: from arguments to a checked answer.

A typed call checks its arguments here (:func:`check_id`, :func:`page_params`),
builds its path and body (:func:`segment`, :func:`given`), sends through the
client's HTTP layer under the proxy :data:`PREFIX` (:func:`send`: upstream
errors become the RealtimeKit error classes, an envelope with
``"success": false`` raises), and reads the answer (:func:`unwrap` for one
object, :func:`fetch_page` and :func:`iterate` for lists).
:func:`retry_not_found` is the poll schedule that waits out eventually
consistent reads.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, TypeVar

from .._http import RETRY_ALWAYS, HttpTransport, encode_json
from ..errors import BadRequestError, CohrtError, InvalidArgumentTypeError
from .errors import RealtimeKitError, RealtimeKitNotFoundError, _parse_errors, _to_realtimekit_error
from .values import Page, Paging, PollSchedule

__all__ = [
    "MAX_PER_PAGE",
    "PREFIX",
    "check_id",
    "check_page",
    "fetch_page",
    "given",
    "iterate",
    "page_params",
    "retry_not_found",
    "segment",
    "send",
    "unwrap",
]

T = TypeVar("T")

#: The proxy prefix that stands for Cloudflare's ``/accounts/{account}/realtime/kit/{app}``.
PREFIX = "/edge/realtimekit"
#: Largest ``per_page`` the API accepts.
MAX_PER_PAGE = 100


# -- arguments ---------------------------------------------------------------------------------
def check_id(value: Any, name: str) -> str:
    """``value`` if it is a non-empty str; otherwise the error, before anything is sent."""
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value:
        raise BadRequestError(f"{name} must not be empty")
    return value


def segment(value: str) -> str:
    """``value`` quoted as one path segment (a ``/`` in an id cannot reach another path)."""
    return urllib.parse.quote(value, safe="")


def check_page(page_no: Any, per_page: Any) -> None:
    """Refuse a page number below 1 or a page size outside 1 to :data:`MAX_PER_PAGE`."""
    for name, value, hi in (("page_no", page_no, None), ("per_page", per_page, MAX_PER_PAGE)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgumentTypeError(f"{name} must be an int")
        if value < 1 or (hi is not None and value > hi):
            raise BadRequestError(
                f"{name} must be from 1 to {hi}" if hi else f"{name} must be >= 1"
            )


def given(skip: Any, **fields: Any) -> Dict[str, Any]:
    """The ``fields`` whose value is not ``skip`` (None, or :data:`UNSET` where None clears)."""
    return {k: v for k, v in fields.items() if v is not skip}


def page_params(page_no: Any, per_page: Any, **filters: Optional[str]) -> Dict[str, Any]:
    """The query of one list page: checked paging, then the filters that are not None."""
    check_page(page_no, per_page)
    return {"page_no": page_no, "per_page": per_page, **given(None, **filters)}


# -- sending and reading -----------------------------------------------------------------------
def send(
    http: HttpTransport,
    method: str,
    path: str,
    *,
    retry_mode: str,
    context: str,
    json_body: Any = None,
    params: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Send one call under :data:`PREFIX` and return its envelope.

    :param retry_mode: the HTTP layer's retry mode (``RETRY_ALWAYS`` or ``RETRY_UNSENT``).
    :param context: what the call does, the start of every error's message.
    :raises RealtimeKitError: an upstream error, or an envelope with ``"success": false``.
    """
    body = None if json_body is None else encode_json(json_body)
    try:
        raw = http.request(
            method, PREFIX + path, params=params, body=body, retry_mode=retry_mode, context=context
        )
    except CohrtError as e:
        mapped = _to_realtimekit_error(e, context)
        if mapped is e:
            raise
        raise mapped from e
    if not isinstance(raw, dict):
        raise CohrtError(f"{context}: expected a JSON object, got {type(raw).__name__}")
    if raw.get("success") is False:
        errors = _parse_errors(raw.get("errors"))
        raise RealtimeKitError(
            f"{context} failed: " + "; ".join(e.message for e in errors), errors=errors
        )
    return raw


def unwrap(envelope: Mapping[str, Any], context: str) -> Dict[str, Any]:
    """The envelope's ``data`` object; a :class:`CohrtError` when there is none."""
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise CohrtError(f"{context}: the response carried no data object")
    return data


def fetch_page(
    http: HttpTransport,
    path: str,
    params: Dict[str, Any],
    build: Callable[[Mapping[str, Any]], T],
    context: str,
) -> Page[T]:
    """``GET`` one list page (retried freely) and build its items; non-objects are skipped."""
    envelope = send(http, "GET", path, params=params, retry_mode=RETRY_ALWAYS, context=context)
    data = envelope.get("data")
    items = tuple(build(x) for x in (data if isinstance(data, list) else []) if isinstance(x, dict))
    return Page(
        items=items,
        paging=Paging.from_wire(envelope.get("paging")),
        page_no=int(params["page_no"]),
        per_page=int(params["per_page"]),
    )


def iterate(fetch: Callable[[int], Page[T]]) -> Iterator[T]:
    """Every item of ``fetch(1)``, ``fetch(2)``, ... until a page says it is the last."""
    page_no = 1
    while True:
        page = fetch(page_no)
        yield from page.items
        if not page.has_next:
            return
        page_no += 1


def retry_not_found(
    schedule: PollSchedule, sleep: Callable[[float], None], call: Callable[[], T]
) -> T:
    """``call()``, tried again on ``ResourceNotFound`` up to the schedule's attempts.

    :raises RealtimeKitNotFoundError: the last attempt's, when every attempt got one.
    """
    for attempt in range(schedule.attempts):
        if attempt:
            sleep(schedule.interval)
        try:
            return call()
        except RealtimeKitNotFoundError:
            if attempt + 1 >= schedule.attempts:
                raise
    raise AssertionError("unreachable: the schedule has at least one attempt")
