"""What every first-party plugin's tests share: a poll with a deadline instead of a sleep.

The servers come from cohrt_sync's own pytest plugin (``cohrt_server``,
``cohrt_key``), as they would in any user's tests.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

Waiter = Callable[..., Any]


def _wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.01)


@pytest.fixture
def wait_for() -> Waiter:
    """``wait_for(predicate, timeout=10.0)``: poll until truthy (returned) or fail."""
    return _wait_for
