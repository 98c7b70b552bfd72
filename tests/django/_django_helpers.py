"""What the Django tests share beyond fixtures (a module of its own: ``conftest`` is ambiguous)."""

from __future__ import annotations

import json
from typing import Any

NO_STORE = "private, no-store, max-age=0"


def post_json(client: Any, url: str, body: Any, **extra: Any) -> Any:
    """POST ``body`` as JSON with Django's test client."""
    return client.post(url, data=json.dumps(body), content_type="application/json", **extra)
