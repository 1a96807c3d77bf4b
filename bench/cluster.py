"""Redis Cluster benchmark: deliveries per second with 1 and with 3 masters (sharded pub/sub).

    .venv/bin/python bench/cluster.py --channels 1000 --rounds 20

For each cluster size, starts the masters (tests/servers.py RedisClusterSet,
127.0.0.1) and the pywsgi server of the test project on them
(``redis+cluster://``, no heartbeat, nothing kept, no history), opens one
websocket per channel, then has ``--publishers`` threads ``SPUBLISH`` 100-byte
messages, ``--rounds`` per channel, the channels split between the threads
(redis-py's cluster pipeline, 100 commands a round trip), and waits until
every socket has every message.  Reports wall time, deliveries per second,
the server's CPU per delivery and each master's CPU per publication.  One
JSON line per cluster size.  Bounded: about a minute in all at the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import SERVER_MODES, RedisClusterSet, Server  # noqa: E402


def publish(cluster: RedisClusterSet, channels: list, rounds: int) -> None:
    client = cluster.client()
    payload = b"x" * 100
    for _ in range(rounds):
        for start in range(0, len(channels), 100):
            pipe = client.pipeline(transaction=False)
            for channel in channels[start:start + 100]:
                pipe.execute_command("SPUBLISH", channel, payload)
            pipe.execute()


async def run(server: Server, cluster: RedisClusterSet, channels: int, rounds: int, publishers: int) -> dict:
    names = [f"b{i}" for i in range(channels)]
    conns = []
    for start in range(0, channels, 200):
        conns += await asyncio.gather(*(websockets.connect(f"{server.ws}/ws/{name}?subscribe-broadcast", ping_interval=None,
                                                           max_queue=None) for name in names[start:start + 200]))
    worker = psutil.Process(server.pids()[-1])
    masters = [psutil.Process(node.proc.pid) for node in cluster.nodes]

    async def drain(ws):
        for _ in range(rounds):
            await ws.recv()

    waiting = asyncio.gather(*(drain(ws) for ws in conns))
    cpu = sum(worker.cpu_times()[:2])
    redis_cpu = [sum(p.cpu_times()[:2]) for p in masters]
    started = time.perf_counter()
    keys = [f"broadcast:{name}" for name in names]
    threads = [threading.Thread(target=publish, args=(cluster, keys[i::publishers], rounds)) for i in range(publishers)]
    for thread in threads:
        thread.start()
    await asyncio.wait_for(waiting, timeout=120)
    wall = time.perf_counter() - started
    for thread in threads:
        await asyncio.to_thread(thread.join)
    cpu = sum(worker.cpu_times()[:2]) - cpu
    redis_cpu = [sum(p.cpu_times()[:2]) - before for p, before in zip(masters, redis_cpu, strict=True)]
    await asyncio.gather(*(ws.close() for ws in conns))
    deliveries = channels * rounds
    return {"masters": len(cluster.nodes), "channels": channels, "rounds": rounds, "publishers": publishers,
            "deliveries": deliveries, "wall_s": round(wall, 2), "deliveries_per_s": round(deliveries / wall),
            "server_cpu_us_per_delivery": round(cpu / deliveries * 1e6, 2),
            "redis_cpu_us_per_publication": [round(c / deliveries * len(masters) * 1e6, 2) for c in redis_cpu]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masters", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--publishers", type=int, default=3)
    args = parser.parse_args()
    mode = next(m for m in SERVER_MODES if m.name == "pywsgi")
    for masters in args.masters:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            cluster = RedisClusterSet(workdir, masters)
            server = Server(mode, cluster.url, workdir, {"WS4REDIS_TEST_HEARTBEAT": "", "WS4REDIS_TEST_EXPIRE": "0",
                                                         "WS4REDIS_TEST_HISTORY": ""})
            try:
                cluster.start()
                server.start()
                result = asyncio.run(run(server, cluster, args.channels, args.rounds, args.publishers))
            finally:
                server.stop()
                cluster.stop()
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
