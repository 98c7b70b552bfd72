"""``GET /openapi.json``: the OpenAPI 3.1 document of the server's HTTP API.

The document ships in the package as ``cohrt_sync/server/openapi.json`` and is
served byte for byte, so what a client downloads is what the tests check the
server against (``tests/adversarial/test_openapi.py``).
"""

from __future__ import annotations

import functools
from importlib import resources

from aiohttp import web

#: Where the running server serves the document.
PATH = "/openapi.json"
_RESOURCE = "openapi.json"


@functools.lru_cache(maxsize=1)
def document_bytes() -> bytes:
    """The document as shipped in the package (read once)."""
    return resources.files(__package__).joinpath(_RESOURCE).read_bytes()


async def serve_document(request: web.Request) -> web.Response:
    """``GET /openapi.json``: no credentials needed; it holds no secret."""
    return web.Response(body=document_bytes(), content_type="application/json", charset="utf-8")


__all__ = ["PATH", "document_bytes", "serve_document"]
