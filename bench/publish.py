"""Client-publish benchmark: N sockets each publish M messages through one server process.

    .venv/bin/python bench/publish.py --sockets 100 --messages 200

Every message goes client -> server -> Redis (PUBLISH, plus SET EX when kept);
measures wall time, publishes per second and the server's CPU time per
publish.  Starts its own redis-server and server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import psutil
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import SERVER_MODES, RedisServer, Server  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="pywsgi", choices=[m.name for m in SERVER_MODES])
    parser.add_argument("--sockets", type=int, default=100)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    mode = next(m for m in SERVER_MODES if m.name == args.mode)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir)
        redis.start()
        server = Server(mode, redis.url, workdir, {"WS4REDIS_TEST_HEARTBEAT": "", "WS4REDIS_TEST_EXPIRE": "0"})
        server.start()
        try:
            result = asyncio.run(run(server, redis, args.sockets, args.messages))
        finally:
            server.stop()
            redis.stop()
    print(f"{args.mode}: " + ", ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
