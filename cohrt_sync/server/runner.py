"""Run the server in a background thread: for tests, the demo and ``cohrt-sync serve``."""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple, Type, Union

from aiohttp import web

from . import logfilter
from .app import build_app
from .backplane import Backplane
from .config import Config
from .connguard import GuardedRunner
from .connlimits import BACKLOG, ConnLimits, raise_nofile, resolve_limits, widen_listen_queue
from .core import Core
from .middleware import RedactingAccessLogger

log = logging.getLogger("cohrt_sync.server")

#: How long start() and stop() wait for the server thread.
THREAD_DEADLINE_S = 15.0


#: The settings' defaults, written once in :class:`~.config.Config`.
_DEFAULTS = Config()

class LocalServer:
    """The local, wire-compatible Realtime server, running in its own thread.

    ``start()`` returns once the server accepts connections; :attr:`base_url`
    then names it. ``stop()`` closes every socket gracefully and joins the
    thread; ``start()`` again serves the same port and data dir, so a restart
    keeps every tenant, message and signing secret.

    :param keys: application keys, one tenant each. With none, one random key
        is made (see :attr:`keys`).
    :param provision: provision realtime (and database) for every key.
    :param data_dir: where state and tenant databases live; a temporary
        directory (removed on :meth:`close`) when None.
    :param host: interface to bind.
    :param port: port to bind; 0 picks a free one (kept across restarts).
    :param live_ids: put ``id`` in live frames and acks; False mimics a server
        whose frames carry no id, as in the spec's examples.
    :param tier: rate-limit tier: unlimited, ephemeral, free, plus or pro;
        the default for keys that have none.
    :param tiers: key → tier, stored as that key's claim (docs/limits.md).
    :param accounts: account name → keys that share per-minute and monthly buckets.
    :param max_payload: largest ``data`` in bytes of JSON.
    :param session_ttl: lifetime of edge session bearers, seconds.
    :param batch_commits: commit concurrent persisted publishes together.
    :param heartbeat: seconds between server pings on each socket.
    :param rtk_delay_ms: how long a new RealtimeKit meeting answers 404.
    :param max_db_size: bytes each tenant's database may hold (D1 free tier:
        500 MB); past it direct SQL answers 413 and persisted publishes fail.
    :param sql_time_limit: seconds a direct-SQL statement may take, its answer
        included.
    :param sql_max_value: bytes of the largest string, BLOB or row direct SQL
        may build (D1: 2,000,000; enforced inside SQLite from Python 3.11).
    :param sql_max_length: bytes of SQL text in one statement (D1: 100,000).
    :param sql_max_params: bound parameters in one statement (D1: 100).
    :param sql_max_rows: rows in one direct-SQL answer.
    :param sql_max_result_bytes: bytes of JSON in one direct-SQL answer's rows.
    :param header_timeout: seconds a new connection has to send a complete
        request head (a WebSocket handshake included); 408, or a plain close
        if it sent nothing.
    :param body_timeout: seconds to receive a whole request body; then 408.
    :param keepalive_timeout: seconds an idle kept-alive connection has to
        send its next complete request head.
    :param send_timeout: seconds a client has to take a whole response;
        then the connection is aborted.
    :param max_connections: connections served at once; more get 503. 0:
        as many as the open-file limit allows (raised at start towards its
        hard limit, up to 8192), minus room for the server's own files.
    :param max_tenant_sockets: WebSockets one tenant may hold (a tier's own
        cap may be lower). 0: half of the connection cap.
    :param max_user_sockets: WebSockets one user may hold; 0: a fifth of the tenant's.
    :param user_socket_opens: WebSockets one user may open a minute; 0: from the tier.
    :param max_head_bytes: most bytes of one request head; more get 431.
    :param socket_queue_bytes: most bytes of unsent frames for one socket;
        past it the socket is closed with 1013.
    :param total_queue_bytes: most bytes of unsent frames for all sockets;
        past it the sockets furthest behind are closed with 1013.
    :param cluster: a Redis URL (``redis://host:port/db``): serve as one node
        of that cluster, with every other server given the same URL and data
        dir (docs/cluster.md; needs the ``[cluster]`` extra). None: alone.
    """

    def __init__(
        self,
        keys: Iterable[str] = (),
        *,
        provision: bool = False,
        data_dir: Union[str, Path, None] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        live_ids: bool = _DEFAULTS.live_ids,
        tier: str = _DEFAULTS.tier,
        tiers: Optional[Mapping[str, str]] = None,
        accounts: Optional[Mapping[str, Sequence[str]]] = None,
        max_payload: int = _DEFAULTS.max_payload,
        session_ttl: int = _DEFAULTS.session_ttl,
        batch_commits: bool = _DEFAULTS.batch_commits,
        heartbeat: float = _DEFAULTS.heartbeat,
        rtk_delay_ms: int = _DEFAULTS.rtk_delay_ms,
        max_db_size: int = _DEFAULTS.max_db_size,
        sql_time_limit: float = _DEFAULTS.sql_time_limit,
        sql_max_value: int = _DEFAULTS.sql_max_value,
        sql_max_length: int = _DEFAULTS.sql_max_length,
        sql_max_params: int = _DEFAULTS.sql_max_params,
        sql_max_rows: int = _DEFAULTS.sql_max_rows,
        sql_max_result_bytes: int = _DEFAULTS.sql_max_result_bytes,
        header_timeout: float = _DEFAULTS.header_timeout,
        body_timeout: float = _DEFAULTS.body_timeout,
        keepalive_timeout: float = _DEFAULTS.keepalive_timeout,
        send_timeout: float = _DEFAULTS.send_timeout,
        max_connections: int = _DEFAULTS.max_connections,
        max_tenant_sockets: int = _DEFAULTS.max_tenant_sockets,
        max_user_sockets: int = _DEFAULTS.max_user_sockets,
        user_socket_opens: int = _DEFAULTS.user_socket_opens,
        max_head_bytes: int = _DEFAULTS.max_head_bytes,
        socket_queue_bytes: int = _DEFAULTS.socket_queue_bytes,
        total_queue_bytes: int = _DEFAULTS.total_queue_bytes,
        cluster: Optional[str] = None,
    ) -> None:
        key_list = list(keys)
        if isinstance(keys, str):
            raise TypeError("keys must be an iterable of strings, not one string")
        self.generated_key = not key_list
        if not key_list:
            key_list = ["coh_local_" + secrets.token_urlsafe(24)]
        self._tmp: Optional[tempfile.TemporaryDirectory[str]] = None
        path, self._tmp = _make_data_dir(Path(data_dir) if data_dir is not None else None)
        self.config = Config(
            keys=key_list,
            provision=provision,
            data_dir=path,
            tier=tier,
            tiers=dict(tiers or {}),
            accounts={name: list(ks) for name, ks in (accounts or {}).items()},
            max_payload=max_payload,
            session_ttl=session_ttl,
            live_ids=live_ids,
            batch_commits=batch_commits,
            heartbeat=heartbeat,
            rtk_delay_ms=rtk_delay_ms,
            max_db_size=max_db_size,
            sql_time_limit=sql_time_limit,
            sql_max_value=sql_max_value,
            sql_max_length=sql_max_length,
            sql_max_params=sql_max_params,
            sql_max_rows=sql_max_rows,
            sql_max_result_bytes=sql_max_result_bytes,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            keepalive_timeout=keepalive_timeout,
            send_timeout=send_timeout,
            max_connections=max_connections,
            max_tenant_sockets=max_tenant_sockets,
            max_user_sockets=max_user_sockets,
            user_socket_opens=user_socket_opens,
            max_head_bytes=max_head_bytes,
            socket_queue_bytes=socket_queue_bytes,
            total_queue_bytes=total_queue_bytes,
            cluster=_check_cluster(cluster),
        )
        # Refuse nonsense limits here, not on the first request.
        self.config.sql_limits()
        self.config.check_tiers()
        #: The connection limits in force, once started.
        self.limits: Optional[ConnLimits] = None
        self.host = host
        self.port = port
        self.clock_offset = 0.0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._core: Optional[Core] = None
        #: The running application's runner (a test reads its routes).
        self._runner: Optional[web.AppRunner] = None
        self._stop_event: Optional[asyncio.Event] = None
        self._lock = threading.Lock()
        #: Keys :meth:`add_key` was asked to provision while stopped.
        self._provision_at_start: List[str] = []

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LocalServer {self.base_url if self.running else ''} {state}>"

    @property
    def keys(self) -> List[str]:
        """The application keys this server accepts (declared at construction)."""
        return list(self.config.keys)

    @property
    def key(self) -> str:
        """The first application key (handy when there is one)."""
        return self.config.keys[0]

    @property
    def data_dir(self) -> Path:
        """Where this server keeps its state and tenant databases."""
        assert self.config.data_dir is not None
        return self.config.data_dir

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://host:port`` of the running server."""
        return "ws" + self.base_url[len("http") :]

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> LocalServer:
        """Start serving; returns once connections are accepted."""
        with self._lock:
            if self.running:
                return self
            ready = threading.Event()
            failure: List[BaseException] = []
            self._thread = threading.Thread(
                target=self._serve, args=(ready, failure), name="cohrt-sync-server", daemon=True
            )
            self._thread.start()
            if not ready.wait(THREAD_DEADLINE_S):
                raise RuntimeError("the local server did not start in time")
            if failure:
                self._thread.join(THREAD_DEADLINE_S)
                self._thread = None
                raise failure[0]
        return self

    def _serve(self, ready: threading.Event, failure: List[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready, failure))
        except BaseException as e:  # surfaced to start()
            if not ready.is_set():
                failure.append(e)
                ready.set()
            else:
                log.exception("the local server stopped with an error")
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    async def _main(self, ready: threading.Event, failure: List[BaseException]) -> None:
        assert self.config.data_dir is not None
        limits = resolve_limits(self.config, raise_nofile())
        log.info(
            "open-file limit %s; serving at most %d connections, %d WebSockets per tenant",
            limits.nofile,
            limits.max_connections,
            limits.max_tenant_sockets,
        )
        self.limits = limits
        core = Core(self.config, self.config.data_dir, await _join_cluster(self.config))
        core.clock_offset = self.clock_offset
        core.conn_limits = limits
        self._core = core
        app = build_app(core)
        if core.backplane.clustered:
            from .cluster.routes import add_routes

            add_routes(app.router)
        runner = GuardedRunner(
            app,
            limits=limits,
            header_timeout=self.config.header_timeout,
            send_timeout=self.config.send_timeout,
            max_head_bytes=self.config.max_head_bytes,
            keepalive_timeout=self.config.keepalive_timeout,
            access_log_class=RedactingAccessLogger,
            access_log=logging.getLogger("aiohttp.access"),
            handle_signals=False,
            shutdown_timeout=5.0,
        )
        await runner.setup()
        # For as long as this server can log request content, and no longer.
        logfilter.install(core.redactor)
        try:
            # Before serving, so the first request already finds them provisioned.
            await self._provision_added_keys(core)
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True, backlog=BACKLOG)
            await site.start()
            sockets = getattr(site._server, "sockets", None) or []
            for sock in sockets:
                widen_listen_queue(sock)
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
            await core.backplane.announce(_reachable(self.base_url, self.host))
            self._runner = runner
            self._stop_event = asyncio.Event()
            ready.set()
            await self._stop_event.wait()
        finally:
            try:
                await runner.cleanup()
            finally:
                logfilter.remove(core.redactor)
            self._runner = None
            self._core = None

    async def _provision_added_keys(self, core: Core) -> None:
        for key in self._provision_at_start:
            tenant = core.state.by_key(key)
            if tenant is not None and not tenant.realtime:
                await core.provision(tenant)
        self._provision_at_start.clear()

    def stop(self) -> None:
        """Stop serving (graceful close frames to every socket); idempotent."""
        with self._lock:
            thread, loop, ev = self._thread, self._loop, self._stop_event
            if thread is None:
                return
            if loop is not None and ev is not None:
                try:
                    loop.call_soon_threadsafe(ev.set)
                except RuntimeError:  # loop already closed
                    pass
            thread.join(THREAD_DEADLINE_S)
            if thread.is_alive():
                log.warning("the local server thread did not stop within %ss", THREAD_DEADLINE_S)
            self._thread = None
            self._stop_event = None

    def close(self) -> None:
        """Stop, and remove the data dir if it was a temporary one."""
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def restart(self) -> None:
        """Stop and start again on the same port and data dir."""
        self.stop()
        self.start()

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    # -- test control -------------------------------------------------------------
    def _call(self, fn: Callable[[Core], Any]) -> Any:
        loop, core = self._loop, self._core
        if loop is None or core is None:
            raise RuntimeError("the local server is not running")

        async def run() -> Any:
            result = fn(core)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), loop).result(THREAD_DEADLINE_S)

    def drop_channel(self, channel: str, key: Optional[str] = None) -> int:
        """Abort the TCP connection of every socket on ``channel`` (no close frame).

        :param key: only that key's tenant; every tenant when None.
        :returns: how many sockets were dropped.
        """

        def drop(core: Core) -> int:
            conns = core.hub.conns(channel, self._tenant_id(core, key))
            for conn in conns:
                conn.abort()
            return len(conns)

        return int(self._call(drop))

    def close_channel(self, channel: str, code: int = 1001, key: Optional[str] = None) -> int:
        """Close every socket on ``channel`` gracefully with ``code``.

        :returns: how many sockets were closed.
        """

        async def close(core: Core) -> int:
            conns = core.hub.conns(channel, self._tenant_id(core, key))
            await asyncio.gather(
                *(c.ws.close(code=code, message=b"closed by server") for c in conns),
                return_exceptions=True,
            )
            return len(conns)

        return int(self._call(close))

    def socket_count(self, channel: Optional[str] = None) -> int:
        """Open sockets, on ``channel`` or on all channels."""
        return int(self._call(lambda core: len(core.hub.conns(channel))))

    def advance_clock(self, seconds: float) -> None:
        """Move the server's clock forward (token expiry without sleeping)."""
        self.clock_offset += seconds
        if self._loop is not None and self._core is not None:
            core = self._core

            def shift(_: Core) -> None:
                core.clock_offset = self.clock_offset

            self._call(shift)

    def add_key(self, key: str, provision: bool = False) -> None:
        """Declare another application key (a new tenant).

        :param provision: provision realtime (and database) for it: now if
            the server is running, else when it next starts.
        """
        self.config.keys.append(key)

        async def add(core: Core) -> None:
            core.redactor.add(key)
            tenant = core.state.add_key(key)
            if provision:
                await core.provision(tenant)
            else:
                await core.state.save(tenant)

        if self.running:
            self._call(add)
        elif provision:
            self._provision_at_start.append(key)

    @staticmethod
    def _tenant_id(core: Core, key: Optional[str]) -> Optional[str]:
        if key is None:
            return None
        tenant = core.state.by_key(key)
        if tenant is None:
            raise KeyError("no tenant has that key")
        return tenant.id


def _check_cluster(url: Optional[str]) -> Optional[str]:
    if url is None:
        return None
    from .cluster.checks import check_url

    return check_url(url)


async def _join_cluster(config: Config) -> Optional[Backplane]:
    """The cluster node this server is, or None when it serves alone."""
    if config.cluster is None:
        return None
    from .cluster import connect

    assert config.data_dir is not None
    return await connect(config.cluster, config.data_dir, config.sql_limits())


def _reachable(base_url: str, host: str) -> str:
    """Where other nodes on this machine reach a server bound to ``host``."""
    if host in ("", "0.0.0.0", "::"):
        return base_url.replace(f"//{host}:", "//127.0.0.1:").replace("//[::]:", "//127.0.0.1:")
    return base_url


def _make_data_dir(path: Optional[Path]) -> Tuple[Path, Optional[tempfile.TemporaryDirectory[str]]]:
    """The data dir to use, creating a temporary one when none is given."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        return path, None
    tmp = tempfile.TemporaryDirectory(prefix="cohrt-sync-")
    return Path(tmp.name), tmp
