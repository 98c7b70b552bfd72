"""Direct SQL over the wire, for the SQL escape and limit suites."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

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
