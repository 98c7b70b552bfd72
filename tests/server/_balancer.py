"""A test-only TCP forwarder that spreads connections over several servers.

Each new connection goes to the next backend in turn (round robin); a
backend that refuses is skipped. Clients take one base URL, so this is how
a test's clients land on both nodes of a cluster, and how they reach the
surviving node after the other is killed.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import List, Optional, Tuple

Backend = Tuple[str, int]


class Balancer:
    """Listens on a free loopback port; :attr:`base_url` names it.

    :param backends: (host, port) of each server.
    """

    def __init__(self, backends: List[Backend]) -> None:
        self.backends = list(backends)
        #: Connections each backend took, in the order of :attr:`backends`.
        self.served = [0] * len(self.backends)
        self._turn = itertools.count()
        self._loop = asyncio.new_event_loop()
        self._server: Optional[asyncio.base_events.Server] = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-balancer", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the balancer did not start")
        assert self._server is not None
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for _ in range(len(self.backends)):
            index = next(self._turn) % len(self.backends)
            host, port = self.backends[index]
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
                self.served[index] += 1
                break
            except (OSError, asyncio.TimeoutError):
                continue
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    def close(self) -> None:
        """Stop listening and end the thread."""

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), self._loop)
        self._thread.join(10)
        self._loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except (ConnectionError, OSError, RuntimeError):
            pass
