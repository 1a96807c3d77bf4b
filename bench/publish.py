"""Client-publish benchmark: N sockets each publish M messages through one server process.

    .venv/bin/python bench/publish.py --sockets 100 --messages 200

Every message goes client -> server -> Redis (PUBLISH, plus SET EX when kept);
measures wall time, publishes per second and the server's CPU time per
publish.  Starts its own redis-server and server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time

import psutil
import websockets

from stack import RedisServer, Server, main


async def run(server: Server, redis: RedisServer, sockets: int, messages: int) -> dict:
    conns = await asyncio.gather(*(websockets.connect(f"{server.ws}/ws/pub?publish-broadcast", ping_interval=None) for _ in range(sockets)))
    worker = psutil.Process(server.pids()[-1])
    counter = redis.client()
    before = int(counter.info("stats")["total_commands_processed"])
    cpu_before = sum(worker.cpu_times()[:2])
    started = time.perf_counter()

    async def send_all(ws):
        for i in range(messages):
            await ws.send(f"message {i}")

    await asyncio.gather(*(send_all(ws) for ws in conns))
    total = sockets * messages
    # Wait until Redis has seen every PUBLISH (and SET EX).
    per_message = 2 if server.extra_env.get("WS4REDIS_TEST_EXPIRE") != "0" else 1
    while int(counter.info("stats")["total_commands_processed"]) - before < total * per_message:
        await asyncio.sleep(0.01)
    wall = time.perf_counter() - started
    cpu = sum(worker.cpu_times()[:2]) - cpu_before
    await asyncio.gather(*(ws.close() for ws in conns))
    return {"sockets": sockets, "messages": messages, "publishes": total, "wall_s": round(wall, 2),
            "publishes_per_s": round(total / wall), "server_cpu_us_per_publish": round(cpu / total * 1e6, 1)}


if __name__ == "__main__":
    main(run, __doc__.splitlines()[0], default_sockets=100, default_messages=200)
