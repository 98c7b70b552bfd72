"""The :class:`RealtimeKit` wrapper: typed calls over the client's HTTP layer.

The class is assembled from the calls of each resource (:mod:`.meetings`,
:mod:`.participants`, which also lists presets) over the shared plumbing of
:mod:`.transport`; it adds the poll schedule and :meth:`RealtimeKit.request`,
the way to any path not wrapped.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Mapping, Optional

from .._http import RETRY_ALWAYS, RETRY_UNSENT, HttpTransport
from ..errors import InvalidArgumentTypeError
from .meetings import MeetingCalls
from .participants import ParticipantCalls
from .transport import MAX_PER_PAGE, PREFIX, send
from .values import DEFAULT_POLL, PollSchedule

__all__ = ["MAX_PER_PAGE", "PREFIX", "RealtimeKit"]


class RealtimeKit(MeetingCalls, ParticipantCalls):
    """Typed RealtimeKit calls over the client's shared HTTP layer.

    Get one from ``client.realtimekit``, or build one over a client's transport.

    :param http: the client's HTTP layer (auth, retries, redaction).
    :param poll: the poll-after-create schedule (default 5 reads, 200 ms apart).
    :param sleep: how to wait between polls; inject a fake one in tests.
    """

    def __init__(
        self,
        http: HttpTransport,
        *,
        poll: PollSchedule = DEFAULT_POLL,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(poll, PollSchedule):
            raise InvalidArgumentTypeError("poll must be a PollSchedule")
        self._http = http
        self._poll = poll
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"<cohrt_sync.RealtimeKit {self._http.base_url}{PREFIX}>"

    @property
    def poll(self) -> PollSchedule:
        """The default poll-after-create schedule (read-only: see :meth:`configured`)."""
        return self._poll

    def configured(
        self,
        *,
        poll: Optional[PollSchedule] = None,
        sleep: Optional[Callable[[float], None]] = None,
    ) -> RealtimeKit:
        """A new wrapper over the same HTTP layer with another schedule or wait.

        This one is left as it is, so keep the result:
        ``rtk = client.realtimekit.configured(poll=...)``.

        :param poll: the new default schedule (unchanged when None).
        :param sleep: the new wait function (unchanged when None).
        """
        return RealtimeKit(self._http, poll=poll or self._poll, sleep=sleep or self._sleep)

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: Optional[Mapping[str, Any]] = None,
    ) -> Dict[str, Any]:
        """Call any RealtimeKit path not wrapped here; returns the whole envelope.

        GET, HEAD and PUT are retried freely; other methods only where the
        request provably did not arrive.

        :param method: HTTP method.
        :param path: the path after the proxy prefix, e.g. ``"/sessions"``.
        :param json: a JSON body.
        :param params: query parameters.
        :raises RealtimeKitError: when RealtimeKit answers with ``errors``.
        """
        if not isinstance(method, str) or not method:
            raise InvalidArgumentTypeError("method must be a non-empty str")
        if not isinstance(path, str):
            raise InvalidArgumentTypeError("path must be a str")
        method = method.upper()
        path = path if path.startswith("/") else "/" + path
        idempotent = method in ("GET", "HEAD", "PUT")
        return send(
            self._http,
            method,
            path,
            json_body=json,
            params=params,
            retry_mode=RETRY_ALWAYS if idempotent else RETRY_UNSENT,
            context=f"RealtimeKit {method} {path}",
        )
