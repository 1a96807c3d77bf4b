"""Soak: waves of connect, subscribe, receive, publish, close and abrupt resets against one server process.

    .venv/bin/python bench/soak.py --mode pywsgi --minutes 2 --sockets 500

Starts its own redis-server and server process on 127.0.0.1 (tests/servers.py)
and repeats waves until ``--minutes`` have passed (bounded: at most
``--waves``).  Each wave opens ``--sockets`` websockets over 10 broadcast
channels, publishes 20 messages per channel straight to Redis and one from a
client per channel, checks every socket got every message, then ends the
sockets: a half with a close frame, a quarter with a TCP reset (SO_LINGER 0),
a quarter by closing the TCP connection without a close frame.  After the
first wave, halfway and at the end it records the worker's RSS, descriptors,
live greenlets, Redis clients and subscribed channels, with no socket open:
they must come back to the first reading.  Prints one line per reading.
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

import psutil
import websockets

from stack import RedisServer, Server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import SERVER_MODES  # noqa: E402

CHANNELS = 10
MESSAGES = 20


def server_stats(server: Server) -> dict:
    with urllib.request.urlopen(server.http + "/stats", timeout=10) as response:
        return json.loads(response.read())


async def wave(server: Server, redis: RedisServer, sockets: int, number: int) -> None:
    urls = [f"{server.ws}/ws/soak{c}?subscribe-broadcast&publish-broadcast&echo" for c in range(CHANNELS)]
    conns = []
    for start in range(0, sockets, 200):
        conns += await asyncio.gather(*(websockets.connect(urls[i % CHANNELS], ping_interval=None, max_queue=None)
                                         for i in range(start, min(sockets, start + 200))))
    publisher = redis.client()
    for m in range(MESSAGES):
        for c in range(CHANNELS):
            publisher.publish(f"broadcast:soak{c}", f"{number}:{m}")
    for c in range(CHANNELS):
        await conns[c].send(f"{number}:client")

    async def drain(ws) -> None:
        for _ in range(MESSAGES + 1):
            await ws.recv()

    await asyncio.wait_for(asyncio.gather(*(drain(ws) for ws in conns)), timeout=120)
    quarter = len(conns) // 4
    for ws in conns[:quarter]:  # reset
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.transport.abort()
    for ws in conns[quarter:2 * quarter]:  # vanish without a close frame
        ws.transport.close()
    await asyncio.gather(*(ws.close() for ws in conns[2 * quarter:]))


def reading(server: Server, redis: RedisServer, label: str, waves: int, started: float) -> dict:
    deadline = time.monotonic() + 15
    while True:  # the server lets go of the sockets within its close timeout plus a tick
        stats = server_stats(server)
        if stats["hubs"][0]["listeners"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    worker = psutil.Process(stats["metrics"]["pid"])  # the process that answered: the worker, not uWSGI's router
    return {
        "at": label, "waves": waves, "minutes": round((time.monotonic() - started) / 60, 1),
        "rss_kib": worker.memory_info().rss >> 10, "fds": worker.num_fds(), "greenlets": stats["greenlets"],
        "listeners": stats["hubs"][0]["listeners"], "channels": stats["hubs"][0]["channels"],
        "redis_clients": len(redis.client().client_list()) - 1, "redis_channels": len(redis.client().pubsub_channels()),
        "delivered": stats["metrics"]["messages_delivered"], "disconnects": stats["metrics"]["disconnects"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="pywsgi", choices=[m.name for m in SERVER_MODES])
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--waves", type=int, default=1000)
    args = parser.parse_args()
    mode = next(m for m in SERVER_MODES if m.name == args.mode)
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp))
        redis.start()
        server = Server(mode, redis.url, Path(tmp), {"WS4REDIS_TEST_HEARTBEAT": "", "WS4REDIS_TEST_EXPIRE": "0"})
        try:
            server.start()
            started = time.monotonic()
            asyncio.run(wave(server, redis, args.sockets, 0))
            readings = [reading(server, redis, "after wave 1", 1, started)]
            print(readings[-1], flush=True)
            waves, middle_done = 1, False
            while waves < args.waves and time.monotonic() - started < args.minutes * 60:
                asyncio.run(wave(server, redis, args.sockets, waves))
                waves += 1
                if not middle_done and time.monotonic() - started >= args.minutes * 30:
                    middle_done = True
                    readings.append(reading(server, redis, "middle", waves, started))
                    print(readings[-1], flush=True)
            readings.append(reading(server, redis, "end", waves, started))
            print(readings[-1], flush=True)
        finally:
            server.stop()
            redis.stop()


if __name__ == "__main__":
    main()
