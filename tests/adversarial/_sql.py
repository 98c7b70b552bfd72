"""Direct SQL and publishes over the wire, for the SQL escape and limit suites."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import requests

#: Long enough for a statement the server interrupts at its own time limit.
TIMEOUT = 15


def sql(base_url: str, key: str, query: str, params: Sequence[Any] = ()) -> requests.Response:
    """``POST /edge/database`` with ``?key=``; the raw answer."""
    return requests.post(
        base_url + "/edge/database",
        params={"key": key},
        json={"query": query, "params": list(params)},
        timeout=TIMEOUT,
    )


def rows(base_url: str, key: str, query: str, params: Sequence[Any] = ()) -> List[Dict[str, Any]]:
    """The result rows of a statement that must succeed."""
    r = sql(base_url, key, query, params)
    assert r.status_code == 200, r.text
    result: List[Dict[str, Any]] = r.json()["results"]
    return result


def publish(
    base_url: str,
    key: str,
    channel: str,
    data: Any,
    persist: Optional[bool] = None,
    headers: Optional[Dict[str, str]] = None,
) -> requests.Response:
    """``POST /edge/realtime`` with ``?key=``; ``persist`` is sent only when given."""
    body: Dict[str, Any] = {"channel": channel, "data": data}
    if persist is not None:
        body["persist"] = persist
    return requests.post(
        base_url + "/edge/realtime",
        params={"key": key},
        json=body,
        headers=headers,
        timeout=TIMEOUT,
    )
