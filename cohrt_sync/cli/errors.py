"""One line for each error a command can meet: what happened and what to do next."""

from __future__ import annotations

import errno
import socket
from typing import Optional

from ..errors import AuthError, CohrtConnectionError, NotProvisionedError, TenantPausedError

__all__ = ["explain"]

# What each refused or failed connection most likely means, for a local or remote server.
_HINTS = {
    errno.ECONNREFUSED: "connection refused (is `cohrt-sync serve` running?)",
    errno.EHOSTUNREACH: "host unreachable (check the address and the network)",
    errno.ENETUNREACH: "network unreachable (check the address and the network)",
    errno.ETIMEDOUT: "connection timed out (check the address, the port and any firewall)",
}


def _os_error(exc: BaseException) -> Optional[OSError]:
    """The first ``OSError`` with an errno in the chain of causes (requests wraps it deeply)."""
    seen = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and (e.errno or isinstance(e, socket.gaierror)):
            return e
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]
        # urllib3 keeps the underlying error in ``reason``, not in the chain.
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
    return None


def explain(command: str, exc: BaseException, base_url: Optional[str]) -> str:
    """The one line printed for ``exc``, raised by ``command`` talking to ``base_url``.

    The library's messages never hold the key; nor does this.
    """
    prefix = f"cohrt-sync {command}: "
    if isinstance(exc, TenantPausedError):
        return prefix + f"{exc} (see `cohrt-sync tenant unpause` and docs/limits.md)"
    if isinstance(exc, NotProvisionedError):
        return prefix + (
            "realtime is not provisioned for this key: run `cohrt-sync provision` "
            "(with the same --base-url and key), then try again"
        )
    if isinstance(exc, AuthError):
        return prefix + (
            f"{exc} (check --key or $COHESIVITY_KEY; `cohrt-sync serve` prints the key it"
            " generated, or accepts yours with --key)"
        )
    if isinstance(exc, CohrtConnectionError) and base_url:
        cause = _os_error(exc)
        if isinstance(cause, socket.gaierror):
            return prefix + f"cannot reach {base_url}: unknown host (check --base-url)"
        if cause is not None and cause.errno in _HINTS:
            return prefix + f"cannot reach {base_url}: {_HINTS[cause.errno]}"
    if isinstance(exc, ImportError):
        return prefix + str(exc)
    return prefix + str(exc).splitlines()[0] if str(exc) else prefix + type(exc).__name__
