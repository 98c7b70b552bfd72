"""Secret redaction shared by the client and the local server.

One :class:`Redactor` knows the secrets registered with it (application
keys) and recognises credentials by shape, so that short-lived tokens need
no registration. :class:`RedactingFilter` applies it to log records, and
:func:`scrub_exception` to an exception and everything chained to it.

What is redacted:

* registered secrets, literally and percent-encoded (any mix of encoded and
  plain characters);
* the value of a query parameter whose percent-*decoded* name is ``key`` or
  ``token`` (the server reads ``?%6Bey=`` as ``key``);
* the value of an ``Authorization`` header, whatever its scheme, up to the
  end of the line or quote (also when control bytes follow it, as in a
  malformed header quoted by a parser);
* ``Bearer`` credentials and anything shaped like a JWT.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

REDACTED = "***"

#: Registered secrets shorter than this are left to the shape rules (see Redactor.add).
MIN_SECRET_LEN = 8

#: Query parameter names (after percent-decoding, case-insensitive) whose values are secret.
SECRET_PARAMS = frozenset({"key", "token"})

# A query parameter: a name after ?, & or ; (or the start of the text) up to
# "=", and its value up to the next "&", "#", white space or quote. Values
# stop at neither ";" nor "%": a server may read "a;b" or "%26" as one value.
_PARAM = re.compile(r"(?:^|(?<=[?&;]))([^=&?;#\s'\"<>]{1,64})=([^&#\s'\"<>]*)")
# The whole value of an Authorization (or Proxy-Authorization) header, up to
# the end of the line or a closing quote, as in a header dict or a quoted
# request excerpt.
_AUTH_HEADER = re.compile(r"(?i)(\bauthorization['\"]?\s*[:=]\s*['\"]?)([^'\"\r\n]+)")
_BEARER = re.compile(r"(?i)(\bbearer\s+)([^\s'\"<]+)")
# A run of dot-separated base64url segments; the JWTs in it (a segment that
# starts as a JSON object, "{" being "ey", and the two after it) are found in
# Python, so that no input makes the regex backtrack quadratically.
_DOTTED = re.compile(r"(?<![A-Za-z0-9_.-])[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){2,}")
# Placeholders in help texts ("Bearer <key>") are not credentials.
_PLACEHOLDER = re.compile(r"^\s*(?:\w+\s+)?<[^>]*>")


def _param(match: re.Match[str]) -> str:
    name, value = match.group(1), match.group(2)
    decoded = urllib.parse.unquote_plus(name, errors="replace").strip().lower()
    if decoded in SECRET_PARAMS and value:
        return f"{name}={REDACTED}"
    return match.group(0)


def _jwts(match: re.Match[str]) -> str:
    parts = match.group(0).split(".")
    out: List[str] = []
    i = 0
    while i < len(parts):
        # header (a JSON object), payload, signature (empty when unsigned)
        if parts[i].startswith("ey") and len(parts[i]) >= 8 and i + 2 < len(parts) and parts[i + 1]:
            out.append(REDACTED)
            i += 3
            continue
        out.append(parts[i])
        i += 1
    return ".".join(out)


def _auth_header(match: re.Match[str]) -> str:
    if _PLACEHOLDER.match(match.group(2)):
        return match.group(0)
    return match.group(1) + REDACTED


def redact_shapes(text: str) -> str:
    """``text`` with every credential recognised by its shape replaced by ``***``.

    :param text: any text about to be shown.
    """
    if "=" in text:
        text = _PARAM.sub(_param, text)
    lowered = text.lower()
    if "authorization" in lowered:
        text = _AUTH_HEADER.sub(_auth_header, text)
    if "bearer" in lowered:
        text = _BEARER.sub(r"\1" + REDACTED, text)
    if "ey" in text and "." in text:
        text = _DOTTED.sub(_jwts, text)
    return text


_WORD = re.compile(r"[^\s'\"]+")
_UNPRINTABLE = re.compile(r"[\x00-\x20\x7f-\x9f]")


def _decoded_without(word: str, secrets: FrozenSet[str]) -> str:
    # Decoding never makes a word longer: a short one can't hold a secret.
    if "%" not in word or len(word) < min(map(len, secrets)):
        return word
    decoded = urllib.parse.unquote(word, errors="replace")
    if not any(secret in decoded for secret in secrets):
        return word
    for secret in secrets:
        decoded = decoded.replace(secret, REDACTED)
    # Decoding must not let "%0A" start a forged log line.
    return _UNPRINTABLE.sub(lambda m: urllib.parse.quote(m.group(0)), decoded)


class Redactor:
    """Registered secrets plus the shapes of credentials; safe to share between threads.

    :param secrets: secrets to register at once.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: FrozenSet[str] = frozenset()
        for secret in secrets:
            self.add(secret)

    @property
    def secrets(self) -> FrozenSet[str]:
        """The registered secrets."""
        return self._secrets

    def add(self, secret: str) -> None:
        """Register ``secret`` (an application key).

        Secrets shorter than :data:`MIN_SECRET_LEN` are not replaced wherever
        they appear (a key ``k`` would turn every ``k`` of a log into ``***``);
        the shape rules still hide them as ``key=`` values and bearers.
        """
        if len(secret) < MIN_SECRET_LEN or secret in self._secrets:
            return
        with self._lock:
            # Copy on write: readers on other threads never see a set change size.
            self._secrets = self._secrets | {secret}

    def redact_secrets(self, text: str) -> str:
        """``text`` with the registered secrets replaced, plain or percent-encoded."""
        secrets = self._secrets
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "%" in text and secrets:
            # Any mix of encoded and plain characters: compare each word decoded.
            text = _WORD.sub(lambda m: _decoded_without(m.group(0), secrets), text)
        return text

    def redact(self, text: str) -> str:
        """``text`` with registered secrets and credential shapes replaced by ``***``.

        :param text: any text about to be shown.
        """
        # Shapes first: a secret replaced inside a token would leave the rest
        # of the token no longer shaped like one.
        return self.redact_secrets(redact_shapes(text))


Redact = Callable[[str], str]


def _scrub_value(value: Any, redact: Redact, todo: List[Any], depth: int) -> Any:
    """``value`` with secrets removed: strings are rewritten, containers and the
    HTTP objects requests and urllib3 hang on their errors are cleaned in place,
    exceptions are queued. Anything else is left alone (pools, sockets, sessions
    are live objects shared with other calls, not the error's own data)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("latin-1")
        clean = redact(text)
        return value if clean == text else type(value)(clean.encode("latin-1", "replace"))
    if isinstance(value, BaseException):
        todo.append(value)
        return value
    if depth > 3:
        return value
    if isinstance(value, tuple):
        items = [_scrub_value(v, redact, todo, depth + 1) for v in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        # A named tuple keeps its type.
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, list):
        value[:] = [_scrub_value(v, redact, todo, depth + 1) for v in value]
        return value
    if isinstance(value, dict) or _is_header_map(value):
        for k in list(value.keys()):
            try:
                value[k] = _scrub_value(value[k], redact, todo, depth + 1)
            except (TypeError, KeyError):  # read-only mappings
                break
        return value
    kind = type(value)
    if kind.__module__.partition(".")[0] not in ("requests", "urllib3"):
        return value
    for attr in _HTTP_ATTRS.get(kind.__name__, ()):
        inner = getattr(value, attr, None)
        if inner is not None:
            clean = _scrub_value(inner, redact, todo, depth + 1)
            if clean is not inner:
                try:
                    setattr(value, attr, clean)
                except (AttributeError, TypeError):  # pragma: no cover - read-only
                    pass
    return value


def _is_header_map(value: Any) -> bool:
    # requests' CaseInsensitiveDict and urllib3's HTTPHeaderDict, without importing them.
    return type(value).__name__ in ("CaseInsensitiveDict", "HTTPHeaderDict")


#: Attributes of the requests and urllib3 objects reachable from transport
#: errors that may hold a URL, a header or a body: requests' PreparedRequest
#: and Response, urllib3's HTTPResponse (``_request_url``).
_HTTP_ATTRS: Dict[str, Tuple[str, ...]] = {
    "PreparedRequest": ("url", "headers", "body"),
    "Request": ("url", "headers", "params", "data"),
    "Response": ("url", "request", "raw", "history"),
    "HTTPResponse": ("_request_url",),
}


def scrub_exception(exc: BaseException, redact: Redact) -> BaseException:
    """Remove secrets from ``exc`` and every exception chained to it, in place.

    Walks ``__cause__``, ``__context__``, exceptions held in ``args`` or
    attributes (urllib3's ``MaxRetryError.reason``), and rewrites the strings
    in ``args``, in instance attributes (``url``, ``_message``, ``message``,
    ``__notes__``) and in the request and response objects requests attaches
    (their URL, headers and body).

    :param exc: the exception to clean.
    :param redact: the function that cleans one string.
    :returns: the same exception.
    """

    def scrub(current: BaseException) -> List[Any]:
        found: List[Any] = []  # exceptions met in args and attributes
        args = _scrub_value(current.args, redact, found, 0)
        if args is not current.args:
            try:
                current.args = args
            except Exception:  # pragma: no cover - exotic exception types
                pass
        for name, value in list(getattr(current, "__dict__", {}).items()):
            clean = _scrub_value(value, redact, found, 0)
            if clean is not value:
                try:
                    setattr(current, name, clean)
                except Exception:  # pragma: no cover - read-only attribute
                    pass
        return found

    each_exception(exc, scrub)
    return exc


def each_exception(
    exc: BaseException, visit: Callable[[BaseException], Optional[Iterable[Any]]]
) -> None:
    """Call ``visit`` once on ``exc`` and on every exception chained to it.

    Follows ``__cause__`` and ``__context__``, and whatever ``visit`` returns
    (exceptions it found elsewhere); cycles are visited once.
    """
    seen: Set[int] = set()
    todo: List[Any] = [exc]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        todo.extend(visit(current) or ())
        todo.extend([current.__cause__, current.__context__])


#: LogRecord attributes that are not caller-supplied ``extra`` fields.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Rewrites a log record that would show a secret: its message (``msg`` and
    ``args`` merged), its exception (scrubbed in place, and ``exc_text``), its
    stack text and string ``extra`` fields. It never drops a record.

    :param redact: the function that cleans one string.
    :param scrub: what cleans a logged exception in place; by default
        :func:`scrub_exception` with ``redact``.
    """

    def __init__(
        self, redact: Redact, scrub: Optional[Callable[[BaseException], Any]] = None
    ) -> None:
        super().__init__()
        self.redact = redact
        self.scrub = scrub or (lambda exc: scrub_exception(exc, redact))

    def filter(self, record: logging.LogRecord) -> bool:
        """Clean ``record`` in place; always keep it."""
        broken = False
        try:
            message = record.getMessage()
        except Exception:
            # logging would print the arguments of a broken format string to
            # stderr as they are: show them here, cleaned, instead.
            message, broken = f"{record.msg} (arguments: {record.args!r})", True
        clean = self.redact(message)
        if clean != message or broken:
            record.msg, record.args = clean, None
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            self.scrub(exc)
            text = logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
            clean = self.redact(text)
            if clean != text:
                # Formatters use exc_text when set: what the exception's own
                # str() still shows (a C-level attribute) is printed clean.
                record.exc_text = clean
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _RECORD_ATTRS and isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True


_FILTERS_LOCK = threading.Lock()


def add_filter(logger: logging.Logger, flt: logging.Filter) -> None:
    """Put ``flt`` on ``logger``, replacing the list rather than changing it:
    another thread may be iterating it to log a record."""
    with _FILTERS_LOCK:
        if flt not in logger.filters:
            logger.filters = [*logger.filters, flt]


def remove_filter(logger: logging.Logger, flt: logging.Filter) -> None:
    """Take ``flt`` off ``logger`` (copy on write, as :func:`add_filter`)."""
    with _FILTERS_LOCK:
        if flt in logger.filters:
            logger.filters = [f for f in logger.filters if f is not flt]


__all__ = [
    "REDACTED",
    "SECRET_PARAMS",
    "RedactingFilter",
    "Redactor",
    "add_filter",
    "redact_shapes",
    "remove_filter",
    "scrub_exception",
]
