"""Soak: waves of sockets that come, listen, publish and go, cleanly or by a reset; nothing may stay behind.

    .venv/bin/python bench/soak.py --mode pywsgi --waves 6 --sockets 300 --messages 20

Starts its own redis-server and one server process of the test project on
127.0.0.1 (tests/servers.py). Each wave opens ``--sockets`` websockets over
ten facilities (a fifth of them also publish), publishes ``--messages``
messages to each facility from Redis and from the publishing sockets, checks
that every subscriber got every message, then closes half of the sockets with
a close handshake and resets the other half (``SO_LINGER`` 0: the kernel sends
RST, the server never sees a close frame). After the first wave (which
creates the process's hub and warms its allocator), after the middle one
and after the last, once the server has had a moment, it samples
the server's RSS, descriptors, live greenlets and hub listeners (the test
project's ``/stats`` view) and Redis' clients and pub/sub channels. Prints
one JSON line; bounded by the wave count (about a minute with the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict

import psutil
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import SERVER_MODES, RedisServer, Server  # noqa: E402

FACILITIES = [f"soak{i}" for i in range(10)]


def sample(server: Server, redis: RedisServer) -> Dict[str, Any]:
    with urllib.request.urlopen(server.http + "/stats", timeout=10) as response:
        stats = json.loads(response.read())
    worker = psutil.Process(server.pids()[-1])
    client = redis.client()
    return {
        "rss_kib": worker.memory_info().rss >> 10,
        "fds": worker.num_fds(),
        "greenlets": stats["greenlets"],
        "listeners": sum(hub["listeners"] for hub in stats["hubs"]),
        "redis_clients": len(client.client_list()) - 1,
        "redis_channels": len(client.pubsub_channels()),
    }


def reset(ws: Any) -> None:
    """End the connection with a TCP reset instead of a close handshake."""
    sock = ws.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


async def wave(server: Server, redis: RedisServer, sockets: int, messages: int) -> int:
    opened, facility_of = [], []
    for start in range(0, sockets, 100):
        batch = []
        for i in range(start, min(sockets, start + 100)):
            facility = FACILITIES[i % len(FACILITIES)]
            facility_of.append(facility)
            flags = "subscribe-broadcast&publish-broadcast" if i % 5 == 0 else "subscribe-broadcast"
            batch.append(websockets.connect(f"{server.ws}/ws/{facility}?{flags}", ping_interval=None, max_queue=None))
        opened += await asyncio.gather(*batch)
    publishing = {i for i in range(len(opened)) if i % 5 == 0}
    from_clients = {facility: 0 for facility in FACILITIES}
    for i in publishing:
        from_clients[facility_of[i]] += 2  # two messages each
    expected = [messages + from_clients[facility_of[i]] - (2 if i in publishing else 0) for i in range(len(opened))]

    async def listen(ws: Any, count: int) -> int:
        got = 0
        try:
            while got < count:
                await asyncio.wait_for(ws.recv(), timeout=10)
                got += 1
        except (asyncio.TimeoutError, websockets.ConnectionClosed):
            pass
        return got

    listening = [asyncio.ensure_future(listen(ws, count)) for ws, count in zip(opened, expected, strict=True)]
    client = redis.client()
    for n in range(messages):
        for facility in FACILITIES:
            client.publish(f"broadcast:{facility}", f"redis {n}")
        await asyncio.sleep(0)
    for i in publishing:  # their own do not come back to them (no echo)
        await opened[i].send("from a client")
        await opened[i].send("from a client")
    counts = await asyncio.gather(*listening)
    lost = sum(count - got for count, got in zip(expected, counts, strict=True))
    for i, ws in enumerate(opened):
        if i % 2:
            reset(ws)
        else:
            await ws.close()
    return lost


async def soak(server: Server, redis: RedisServer, waves: int, sockets: int, messages: int) -> Dict[str, Any]:
    samples = {}
    lost = 0
    started = time.monotonic()
    for n in range(waves):
        lost += await wave(server, redis, sockets, messages)
        if n == 0:
            await asyncio.sleep(4)
            samples["first"] = sample(server, redis)
        elif n == waves // 2:
            await asyncio.sleep(4)  # closes and resets are noticed, close timeouts run out
            samples["middle"] = sample(server, redis)
    await asyncio.sleep(4)
    samples["end"] = sample(server, redis)
    return {"mode": server.mode.name, "waves": waves, "sockets_per_wave": sockets, "messages_per_wave": messages,
            "lost": lost, "seconds": round(time.monotonic() - started, 1), "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="pywsgi", choices=[m.name for m in SERVER_MODES])
    parser.add_argument("--waves", type=int, default=6)
    parser.add_argument("--sockets", type=int, default=300)
    parser.add_argument("--messages", type=int, default=20)
    args = parser.parse_args()
    mode = next(m for m in SERVER_MODES if m.name == args.mode)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir)
        redis.start()
        server = Server(mode, redis.url, workdir, {"WS4REDIS_TEST_HEARTBEAT": "", "WS4REDIS_TEST_EXPIRE": "0",
                                                   "WS4REDIS_LOG_LEVEL": "WARNING"})
        try:
            server.start()
            result = asyncio.run(soak(server, redis, args.waves, args.sockets, args.messages))
        finally:
            server.stop()
            redis.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
