"""Keeping application keys and tokens out of everything the server logs.

When aiohttp refuses a malformed request it logs an ERROR traceback quoting
the raw request line or header, and a request can carry a key in many
places (``?key=``, ``?%6Bey=``, ``Authorization``, a path). One filter,
shared by every running :class:`~cohrt_sync.server.LocalServer` of the
process, sits on each logger that can carry request content while at least
one server runs. It redacts the keys of every running server (registered
as they become known, including keys added at run time), credentials by
shape (see :mod:`cohrt_sync._redact`), and withholds the raw request bytes
that aiohttp's parser errors quote, since an excerpt cut to 100 bytes can
hold part of a key that no pattern recognises any more.

Only these loggers are touched; records of the embedding application's
own loggers are left as they are.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from typing import Callable, List, Tuple

from aiohttp.http_exceptions import HttpProcessingError

from .._redact import (
    RedactingFilter,
    Redactor,
    add_filter,
    each_exception,
    redact_shapes,
    remove_filter,
)
from .._redact import scrub_exception as _scrub_exception

#: Loggers that can carry request content. aiohttp.client is the embedding
#: application's, not the server's, and is left alone.
SERVER_LOGGERS = (
    "aiohttp",
    "aiohttp.access",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
    "aiohttp.internal",
    "asyncio",
    "cohrt_sync.server",
)
#: Loggers below this prefix that exist when a server starts are filtered too
#: (a filter applies to its own logger's records only, not its children's).
_OWN_PREFIX = "cohrt_sync.server."

WITHHELD = "<request bytes withheld>"
# A Python str/bytes literal on one line, as aiohttp's parser errors quote
# the offending request line or header (b'...', bytearray(b'...'), '...').
_QUOTED = re.compile(r"""(?:bytearray\()?b?(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")\)?""")
# The caret under the offending byte would still tell where in the line it was.
_CARET = re.compile(r"\n[ \t]*\^[ \t]*(?=\n|$)")


def _withhold(text: str) -> str:
    return _CARET.sub("", _QUOTED.sub(WITHHELD, text))


def withhold_request_bytes(exc: BaseException) -> None:
    """Replace the quoted request excerpts in aiohttp parser errors of ``exc``'s chain."""

    def withhold(current: BaseException) -> None:
        if isinstance(current, HttpProcessingError):
            current.message = _withhold(current.message)
            current.args = tuple(_withhold(a) if isinstance(a, str) else a for a in current.args)

    each_exception(exc, withhold)


# Path segments and query values long enough to be a key.
_CANDIDATE = re.compile(r"[^/?&=;#\s]{8,}")


def learn_keys(text: str, is_key: Callable[[str], bool], redactor: Redactor) -> None:
    """Register with ``redactor`` any key ``text`` holds that ``is_key`` recognises.

    A key of an earlier run on the same data dir is stored only as a digest,
    so it is unknown until it appears; this finds it where it appears in an
    odd place (``GET /edge/<key>``) before a log line shows it.
    """
    for match in _CANDIDATE.finditer(text):
        candidate = urllib.parse.unquote(match.group(0), errors="replace")
        if candidate not in redactor.secrets and is_key(candidate):
            redactor.add(candidate)


class _Registry:
    """The redactors of the running servers and the one filter applying them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._redactors: Tuple[Redactor, ...] = ()
        self._loggers: List[logging.Logger] = []
        self.filter = RedactingFilter(self.redact, self.scrub)

    def redact(self, text: str) -> str:
        for redactor in self._redactors:
            text = redactor.redact_secrets(text)
        return redact_shapes(text)

    def scrub(self, exc: BaseException) -> None:
        withhold_request_bytes(exc)
        _scrub_exception(exc, self.redact)

    def install(self, redactor: Redactor) -> None:
        with self._lock:
            self._redactors = (*self._redactors, redactor)
            if len(self._redactors) > 1:
                return
            names = set(SERVER_LOGGERS)
            names.update(
                name
                for name in list(logging.Logger.manager.loggerDict)
                if name.startswith(_OWN_PREFIX)
            )
            self._loggers = [logging.getLogger(name) for name in sorted(names)]
            for logger in self._loggers:
                add_filter(logger, self.filter)

    def remove(self, redactor: Redactor) -> None:
        with self._lock:
            self._redactors = tuple(r for r in self._redactors if r is not redactor)
            if self._redactors:
                return
            for logger in self._loggers:
                remove_filter(logger, self.filter)
            self._loggers = []


_REGISTRY = _Registry()


def install(redactor: Redactor) -> None:
    """Redact ``redactor``'s secrets (and credential shapes) from the server's
    loggers until :func:`remove`; the first running server puts the filter on."""
    _REGISTRY.install(redactor)


def remove(redactor: Redactor) -> None:
    """Stop redacting for ``redactor``; the last server to stop takes the filter off."""
    _REGISTRY.remove(redactor)


def redact(text: str) -> str:
    """``text`` without the running servers' keys or anything shaped like a credential.

    :param text: e.g. a request's path and query string.
    """
    return _REGISTRY.redact(text)


__all__ = [
    "SERVER_LOGGERS",
    "install",
    "learn_keys",
    "redact",
    "remove",
    "withhold_request_bytes",
]
