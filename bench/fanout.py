"""Fan-out benchmark: one server process, N idle sockets, M broadcasts.

    .venv/bin/python bench/fanout.py --mode pywsgi --sockets 1000 --messages 200

Starts its own redis-server and server process on 127.0.0.1 (from
tests/servers.py), opens N websockets subscribed to one broadcast channel
from this process (asyncio ``websockets``), publishes M messages of 100 bytes
straight to Redis, and waits until every socket has every message.  Reports
wall time, deliveries per second, the server's CPU time per delivery (the
steadier figure on a shared machine), Redis clients and RSS per socket.
"""

from __future__ import annotations

import asyncio
import time

import psutil
import websockets

from stack import RedisServer, Server, main


async def run(server: Server, redis: RedisServer, sockets: int, messages: int) -> dict:
    url = f"{server.ws}/ws/bench?subscribe-broadcast"
    worker = psutil.Process(server.pids()[-1])
    rss_before = worker.memory_info().rss
    conns = []
    for start in range(0, sockets, 200):
        batch = min(200, sockets - start)
        conns += await asyncio.gather(*(websockets.connect(url, ping_interval=None, max_queue=None) for _ in range(batch)))
    rss_after = worker.memory_info().rss
    clients = len(redis.client().client_list()) - 1

    async def drain(ws):
        for _ in range(messages):
            await ws.recv()

    publisher = redis.client()
    payload = b"x" * 100
    cpu_before = sum(worker.cpu_times()[:2])
    started = time.perf_counter()
    waiting = asyncio.gather(*(drain(ws) for ws in conns))
    for _ in range(messages):
        publisher.publish("broadcast:bench", payload)
        await asyncio.sleep(0)
    await asyncio.wait_for(waiting, timeout=300)
    wall = time.perf_counter() - started
    cpu = sum(worker.cpu_times()[:2]) - cpu_before
    await asyncio.gather(*(ws.close() for ws in conns))
    deliveries = sockets * messages
    return {
        "sockets": sockets, "messages": messages, "deliveries": deliveries,
        "wall_s": round(wall, 2), "deliveries_per_s": round(deliveries / wall),
        "server_cpu_us_per_delivery": round(cpu / deliveries * 1e6, 2),
        "redis_clients": clients, "rss_kib_per_socket": round((rss_after - rss_before) / sockets / 1024, 1),
    }


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0], default_sockets=1000, default_messages=200)
