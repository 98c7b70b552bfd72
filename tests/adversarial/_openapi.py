"""The OpenAPI document as the installed package ships it, for the tests that check against it."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Dict, List, Tuple

import requests

#: Where the running server serves it.
DOC_PATH = "/openapi.json"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def packaged_bytes() -> bytes:
    """The document file of the installed ``cohrt_sync.server`` package."""
    return resources.files("cohrt_sync.server").joinpath("openapi.json").read_bytes()


DOCUMENT: Dict[str, Any] = json.loads(packaged_bytes())
#: (path, method) of every documented operation, in document order.
OPERATIONS: List[Tuple[str, str]] = [
    (path, method)
    for path, item in DOCUMENT["paths"].items()
    for method in item
    if method in _METHODS
]


def real_ids(base_url: str, key: str, meeting: Dict[str, Any], preset: str) -> Dict[str, str]:
    """Create a meeting and a participant; their ids fill the documented paths' parameters."""
    h = {"Authorization": f"Bearer {key}"}
    base = base_url + "/edge/realtimekit/meetings"
    made = requests.post(base, json=meeting, headers=h, timeout=5).json()["data"]
    part = requests.post(
        f"{base}/{made['id']}/participants",
        json={"preset_name": preset},
        headers=h,
        timeout=5,
    ).json()["data"]
    return {"meeting_id": made["id"], "participant_id": part["id"]}
