"""What can be checked before a node connects, without importing Redis's client:
the URL, the ``[cluster]`` extra, and the error that says what went wrong.

A server started without ``--cluster`` imports this module at most (the
command line does, to name its errors), never redis-py.
"""

from __future__ import annotations

import importlib.util


class ClusterUnavailable(Exception):
    """Cluster mode can't start: the extra is missing, Redis can't be reached,
    or the data dir is not the cluster's."""


def has_extra() -> bool:
    """Whether redis-py (the ``[cluster]`` extra) can be imported."""
    try:
        return importlib.util.find_spec("redis") is not None
    except (ImportError, ValueError):
        return False


def missing_extra() -> ClusterUnavailable:
    """The error for a cluster without the extra, naming how to install it."""
    return ClusterUnavailable(
        "cluster mode needs the cluster extra: pip install 'cohrt-sync[cluster]'"
    )


def check_url(url: str) -> str:
    """Refuse a cluster URL Redis can't take, in one line naming the forms it can.

    :raises ClusterUnavailable: the [cluster] extra is not installed.
    :raises ValueError: the URL is not a Redis URL.
    """
    if not has_extra():
        raise missing_extra()
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(
            f"cluster must be a Redis URL such as redis://127.0.0.1:6379/0, not {url!r}"
        )
    return url


def redact_url(url: str) -> str:
    """``url`` without a password (redis://:secret@host → redis://***@host)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


__all__ = ["ClusterUnavailable", "check_url", "has_extra", "missing_extra", "redact_url"]
