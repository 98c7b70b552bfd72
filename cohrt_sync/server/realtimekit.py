"""RealtimeKit REST emulation under ``/edge/realtimekit/`` (filled in by its own issue)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .app import Core


def install(app: web.Application, core: Core) -> None:
    """Add the RealtimeKit routes to ``app``."""
