"""A storm of recovering handshakes against one of plain ones: the worker's CPU for each (issue 16).

    .venv/bin/python bench/recovery_storm.py                        # about 1 minute on 2 cores
    .venv/bin/python bench/recovery_storm.py --clients 50 --rounds 1   # a smoke run

Starts its own redis-server and one test-project server (pywsgi mode, one
process, no heartbeat, history 100 per channel) on 127.0.0.1. One broadcast
channel gets ``--history`` publications of ``--payload`` bytes (with history,
as RedisPublisher makes them). Then, in each round, ``--clients`` sockets open
at once (in batches of 200 handshakes) and each reads what it is owed; the
worker's CPU time (``utime`` + ``stime`` of ``/proc/<pid>/stat``) from before
the first handshake to the last socket served is the figure. Cases:

* ``plain``: ``?subscribe-broadcast``: the 101 and the kept message.
* ``recover-same``: ``?subscribe-broadcast&recover=<position>``, every client
  at the same position, ``--missed`` publications behind: one read shared.
* ``recover-spread``: positions spread over the last ``--spread`` offsets
  (client ``i`` is ``i % spread + 1`` behind): up to ``spread`` distinct reads
  per storm, the worst case for sharing.

A listener stays subscribed in ``--warm`` runs, so the worker remembers the
channel's last 32 publications (64 KiB at most) and serves positions they cover
without Redis; without it the worker unsubscribes between rounds and forgets.
Prints one JSON line per round and case, then a summary with the ratios to
``plain`` (medians over the rounds) on stderr. Every socket is checked: the
plain ones got the kept message, the recovering ones a report saying
"recovered" and exactly the publications they missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Dict, List, Optional

from websockets.asyncio.client import ClientConnection, connect

from stack import RedisServer, Server, machine_line, on_own_redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's ws4redis_mw, as the servers run it
from ws4redis_mw import history  # noqa: E402

from servers import SERVER_MODES  # noqa: E402

PYWSGI = next(m for m in SERVER_MODES if m.name == "pywsgi")
CONFIG = history.HistoryConfig(100, 300)
CASES = ("plain", "recover-same", "recover-spread")
_TICKS = os.sysconf("SC_CLK_TCK")


def worker_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) of process ``pid``, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15 of stat(5)


def position_url(server: Server, name: str, epoch: str, offset: Optional[int]) -> str:
    if offset is None:
        return f"{server.ws}/ws/{name}?subscribe-broadcast"
    value = urllib.parse.quote(json.dumps({"broadcast": {"epoch": epoch, "offset": offset}}))
    return f"{server.ws}/ws/{name}?subscribe-broadcast&recover={value}"


async def serve_one(url: str, top: int, offset: Optional[int], payloads: Dict[int, str], bad: List[str]) -> ClientConnection:
    ws = await connect(url, ping_interval=None, max_queue=None, max_size=None, open_timeout=120)
    first = await ws.recv()
    if offset is None:
        if first != payloads[top]:
            bad.append(f"plain: {str(first)[:60]}")
        return ws
    report = json.loads(first)
    got = [json.loads(await ws.recv())["offset"] for _ in range(report["missed"])]
    if not report["recovered"] or got != list(range(offset + 1, top + 1)):
        bad.append(f"recover from {offset}: {str(report)[:120]} {got[:5]}")
    return ws


async def one_storm(server: Server, name: str, epoch: str, top: int, case: str, args: argparse.Namespace,
                    payloads: Dict[int, str]) -> dict:
    offsets: List[Optional[int]]
    if case == "plain":
        offsets = [None] * args.clients
    elif case == "recover-same":
        offsets = [top - args.missed] * args.clients
    else:
        offsets = [top - (i % args.spread + 1) for i in range(args.clients)]
    bad: List[str] = []
    conns: List[ClientConnection] = []
    assert server.proc is not None
    before, started = worker_cpu(server.proc.pid), time.perf_counter()
    for start in range(0, args.clients, 200):
        batch = offsets[start:start + 200]
        conns += await asyncio.gather(*(serve_one(position_url(server, name, epoch, offset), top, offset, payloads, bad)
                                        for offset in batch))
    used, wall = worker_cpu(server.proc.pid) - before, time.perf_counter() - started
    await asyncio.gather(*(ws.close() for ws in conns))
    return {"measurement": "storm", "case": case, "clients": args.clients, "payload_bytes": args.payload, "warm": args.warm,
            "served": args.clients - len(bad), "errors": bad[:3], "worker_cpu_s": round(used, 3),
            "worker_cpu_ms_per_handshake": round(used / args.clients * 1000, 3), "wall_s": round(wall, 2)}


async def run(args: argparse.Namespace, workdir: Path, redis: RedisServer) -> List[dict]:
    env = {"WS4REDIS_TEST_HEARTBEAT": "", "WS4REDIS_TEST_HISTORY": f"{CONFIG.size},{CONFIG.ttl}",
           "WS4REDIS_TEST_MAX_SOCKETS_PER_IP": "", "WS4REDIS_TEST_EXPIRE": "600"}
    server = Server(PYWSGI, redis.url, workdir, env)
    client = redis.client()
    name = "recovery-storm"
    payloads: Dict[int, str] = {}
    for _ in range(args.history):
        text = f"{len(payloads) + 1}:".ljust(args.payload, ".")
        offset = int(client.execute_command("EVAL", history.PUBLISH_SCRIPT,
                                            *history.publish_args(f"broadcast:{name}", None, CONFIG, text.encode(), 600)))
        payloads[offset] = text
    epoch, top = client.hget(history.meta_key(f"broadcast:{name}", None), "epoch").decode(), max(payloads)
    lines: List[dict] = []
    try:
        server.start()
        anchor = await connect(position_url(server, name, epoch, None), ping_interval=None, max_size=None) if args.warm else None
        for _ in range(args.rounds):
            for case in CASES:
                await asyncio.sleep(0.5)  # the closes of the last storm are done
                lines.append(await one_storm(server, name, epoch, top, case, args, payloads))
                print(json.dumps(lines[-1]), flush=True)
        if anchor is not None:
            await anchor.close()
    finally:
        server.stop()
    return lines


def summary(lines: List[dict]) -> str:
    per = {case: statistics.median(line["worker_cpu_ms_per_handshake"] for line in lines if line["case"] == case) for case in CASES}
    return "; ".join(f"{case} {per[case]:.2f} ms/handshake ({per[case] / per['plain']:.2f}x plain)" for case in CASES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000, help="handshakes per storm")
    parser.add_argument("--rounds", type=int, default=3, help="storms per case (the median is reported)")
    parser.add_argument("--history", type=int, default=60, help="publications in the channel's history")
    parser.add_argument("--payload", type=int, default=1024, help="bytes per publication")
    parser.add_argument("--missed", type=int, default=5, help="publications behind, recover-same")
    parser.add_argument("--spread", type=int, default=50, help="distinct positions, recover-spread")
    parser.add_argument("--warm", action="store_true", help="a listener stays: the worker remembers the channel")
    args = parser.parse_args()
    print(json.dumps(machine_line()), flush=True)
    lines = on_own_redis(lambda workdir, redis: run(args, workdir, redis))
    print(summary(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
