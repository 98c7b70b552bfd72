"""Server memory: RSS per idle socket at 1,000 sockets, and per busy channel.

The server runs in a child process and the sockets in another, so the RSS
read from ``/proc`` is the server's alone.

``idle`` (the default): the server is warmed up (50 sockets, held open),
then 1,000 more WebSockets open, each on its own channel as its own user,
and stay quiet. Growth of the server's RSS / 1,000 is the cost of an idle
socket (goal: <= 40 KB). Baseline in the same run: the bare aiohttp
broadcast loop of ``_load.py`` holding the same number of sockets. Rounds
alternate which server goes first.

``busy``: 100 channels, each with 5 subscribers and 1 publisher sending
``persist: false`` messages of ~200 bytes at a steady 20/s (2,000 msgs/s,
10,000 deliveries/s in all). The server's RSS is sampled while the same
sockets are idle, then every 0.5 s of the steady fan-out; the growth per
channel is what a busy channel costs beyond its idle sockets. The load
reports the deliveries/s it received, to show it kept up.

    python benchmarks/server_memory.py [idle|busy|both] [--sockets 1000] [--rounds 3]
        [--channels 100] [--subscribers 5] [--rate 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List

import aiohttp
from _child_server import ChildServer, raise_nofile
from _load import machine_line, mint, open_sockets, runs_text

KEY = "k_bench"


# -- the load process -------------------------------------------------------------------------
async def _hold(args: Dict[str, Any]) -> None:
    """Open the sockets, say so, then publish (busy) or wait (idle) until told."""
    raise_nofile()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        socks = await open_sockets(session, args["urls"])
        for ws in socks:
            for _ in range(args["greeting"]):
                await ws.receive()
        print(json.dumps({"open": len(socks)}), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)  # "go" (or EOF: close)
        result: Dict[str, Any] = {}
        if args.get("publishers"):
            result = await _publish(socks, args)
        print(json.dumps(result), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        for ws in socks:
            await ws.close()


async def _publish(
    socks: List[aiohttp.ClientWebSocketResponse], args: Dict[str, Any]
) -> Dict[str, Any]:
    pubs = socks[: args["publishers"]]
    subs = socks[args["publishers"] :]
    received = 0
    stop = asyncio.Event()

    async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
        nonlocal received
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                return
            if '"bench"' in msg.data:
                received += 1

    frame = json.dumps(
        {"action": "publish", "event": "bench", "data": {"pad": "x" * 160}, "persist": False}
    )

    async def publish(ws: aiohttp.ClientWebSocketResponse, offset: float) -> int:
        sent, interval = 0, 1.0 / args["rate"]
        start = time.monotonic() + offset
        while not stop.is_set():
            delay = start + sent * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send_str(frame)
            sent += 1
        return sent

    readers = [asyncio.ensure_future(drain(ws)) for ws in [*subs, *pubs]]
    n = len(pubs)
    tasks = [asyncio.ensure_future(publish(ws, i / n / args["rate"])) for i, ws in enumerate(pubs)]
    started = time.monotonic()
    await asyncio.sleep(args["seconds"])
    stop.set()
    sent = sum(await asyncio.gather(*tasks))
    elapsed = time.monotonic() - started
    await asyncio.sleep(0.5)
    for t in readers:
        t.cancel()
    return {"sent": sent, "received": received, "seconds": elapsed}


# -- the parent -----------------------------------------------------------------------------
class Load:
    """The load process holding ``urls`` open."""

    def __init__(self, args: Dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--load", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(args) + "\n")
        self.proc.stdin.flush()
        self.opened = self.line()["open"]

    def line(self) -> Dict[str, Any]:
        assert self.proc.stdout is not None
        text = self.proc.stdout.readline()
        if not text:
            raise SystemExit("the load process ended early")
        return dict(json.loads(text))

    def say(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)


def _settle(srv: ChildServer) -> float:
    time.sleep(1.0)
    return srv.rss_kib()


def _ours_urls(srv: ChildServer, n: int, prefix: str) -> List[str]:
    return [
        f"{srv.ws_url}/edge/realtime?channel={prefix}{i}"
        f"&token={mint(srv.base_url, KEY, f'{prefix}{i}')}"
        for i in range(n)
    ]


def idle_per_socket(kind: str, sockets: int) -> float:
    """KiB of server RSS per idle socket at ``sockets`` open."""
    kwargs: Dict[str, Any] = {"keys": [KEY], "provision": True} if kind == "ours" else {}
    with ChildServer(kind, **kwargs) as srv:

        def urls(n: int, prefix: str) -> List[str]:
            if kind == "bare":
                return [f"{srv.ws_url}/ws?role=sub"] * n
            return _ours_urls(srv, n, prefix)

        greeting = 2 if kind == "ours" else 0
        # The warm-up sockets stay open: closed, they would leave freed memory
        # that the first measured sockets reuse, understating the cost.
        warm = Load({"urls": urls(50, "warm"), "greeting": greeting})
        all_urls = urls(sockets, "idle")
        before = _settle(srv)
        load = Load({"urls": all_urls, "greeting": greeting})
        if load.opened != sockets:
            raise SystemExit(f"opened {load.opened} of {sockets} sockets")
        after = _settle(srv)
        for held in (load, warm):
            held.say()
            held.line()
            held.close()
    return (after - before) / sockets


def busy_per_channel(
    channels: int, subscribers: int, rate: float, seconds: float
) -> Dict[str, float]:
    """KiB of server RSS per channel: idle sockets, then under steady fan-out."""
    with ChildServer("ours", keys=[KEY], provision=True) as srv:
        urls_pub: List[str] = []
        urls_sub: List[str] = []
        sub_token = mint(srv.base_url, KEY, "sub")
        for c in range(channels):
            url = f"{srv.ws_url}/edge/realtime?channel=busy{c}&token="
            urls_pub.append(url + mint(srv.base_url, KEY, f"pub{c}"))
            urls_sub.extend([url + sub_token] * subscribers)
        before = _settle(srv)
        load = Load(
            {
                "urls": urls_pub + urls_sub,
                "greeting": 2,
                "publishers": channels,
                "rate": rate,
                "seconds": seconds,
            }
        )
        idle = _settle(srv)
        load.say()
        samples: List[float] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline - 0.25:
            time.sleep(0.5)
            samples.append(srv.rss_kib())
        result = load.line()
        load.close()
    steady = samples[len(samples) // 2 :]  # the second half: past any ramp-up
    busy = statistics.median(steady)
    return {
        "idle": (idle - before) / channels,
        "busy": (busy - before) / channels,
        "peak": (max(samples) - before) / channels,
        "deliveries_s": result["received"] / result["seconds"],
        "target_s": channels * (subscribers + 1) * rate,  # with the publisher's echo
        "lost": result["sent"] * subscribers - result["received"] + result["sent"],
    }


def _med(values: List[float]) -> str:
    return (
        f"{statistics.median(values):7,.1f} KiB median  ({', '.join(f'{v:,.1f}' for v in values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", nargs="?", default="idle", choices=["idle", "busy", "both"])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians")
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--subscribers", type=int, default=5, help="per busy channel")
    parser.add_argument("--rate", type=float, default=20.0, help="msgs/s per busy channel")
    parser.add_argument("--seconds", type=float, default=10.0, help="of steady fan-out")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        asyncio.run(_hold(json.loads(sys.stdin.readline())))
        return
    raise_nofile()
    print(machine_line())
    if args.mode in ("idle", "both"):
        res: Dict[str, List[float]] = {"ours": [], "bare": []}
        for r in range(args.rounds):
            pair = ["ours", "bare"]
            for kind in pair if r % 2 == 0 else pair[::-1]:
                res[kind].append(idle_per_socket(kind, args.sockets))
        o, b = statistics.median(res["ours"]), statistics.median(res["bare"])
        print(
            f"idle sockets: {args.sockets:,} open, server RSS growth per socket,"
            f" {args.rounds} rounds"
        )
        print(f"  cohrt-sync server : {_med(res['ours'])}  = {o * 1.024:,.1f} KB  (goal <= 40 KB)")
        print(f"  bare aiohttp loop : {_med(res['bare'])}")
        print(f"  ratio of medians  : {o / b:.2f}x")
    if args.mode in ("busy", "both"):
        rounds: List[Dict[str, float]] = []
        for _ in range(args.rounds):
            rounds.append(
                busy_per_channel(args.channels, args.subscribers, args.rate, args.seconds)
            )
        col = {k: [r[k] for r in rounds] for k in rounds[0]}
        print(
            f"busy channels: {args.channels} channels x (1 publisher + {args.subscribers} "
            f"subscribers), {args.rate:g} msgs/s each for {args.seconds:g} s, {args.rounds} rounds"
        )
        print(f"  per channel, sockets idle     : {_med(col['idle'])}")
        print(f"  per channel, steady fan-out   : {_med(col['busy'])}")
        print(f"  per channel, peak sample      : {_med(col['peak'])}")
        print(
            f"  deliveries received by the load: {runs_text(col['deliveries_s'])} /s "
            f"(offered {col['target_s'][0]:,.0f}/s; frames short: {runs_text(col['lost'])})"
        )


if __name__ == "__main__":
    main()
