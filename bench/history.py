"""History and recovery: a reconnect storm, the cost of a publication with history, and the memory it takes.

    .venv/bin/python bench/history.py                      # about 1 minute on 2 cores
    .venv/bin/python bench/history.py --clients 20 --subscribers 20 --seconds 2 --publications 200   # a smoke run

Starts its own redis-server and test-project servers (pywsgi mode, one
process each, no heartbeat) on 127.0.0.1 and prints one JSON line per
measurement on stdout, then a short summary on stderr:

* ``reconnect`` (three lines): ``--clients`` opted-in sockets of one broadcast
  channel note their position and all go away; ``--missed`` publications are
  made with history; then every socket reconnects at once with its position.
  Timed until each has its recovery report and every publication it missed;
  the Redis commands the reconnection caused are the ``INFO commandstats``
  deltas (``info`` includes the hub's own reading every second).  Cases:
  ``warm`` (one more socket stayed, so the worker heard the publications and
  remembers them), ``left`` (the worker ran all along but nobody stayed: it
  unsubscribed and forgot the channel), ``restarted`` (a new worker process).
* ``redis_cost``: ``--publications`` publications of 100 bytes, one at a
  time, each way: the history script (``EVAL``) and ``PUBLISH`` + ``SET``
  (what the library sends without history); Redis' own time per call
  (``usec`` of ``INFO commandstats``) and its process CPU (``used_cpu_*``).
* ``server_cost`` (two lines): two servers, history on and off, each with
  ``--subscribers`` sockets of its own channel, ``--rate`` publications per
  second for ``--seconds`` seconds to both; the CPU time of each server
  process (``/proc``) per delivery.  First with plain sockets on both, then
  with opted-in sockets on the server with history.
* ``memory``: ``MEMORY USAGE`` of a channel's stream and meta hash after 100
  publications of 1 KiB, and of 100 bytes, history size 100.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

import psutil
from websockets.asyncio.client import ClientConnection, connect

from stack import RedisServer, Server, machine_line, on_own_redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's ws4redis_mw, as the servers run it
from ws4redis_mw import history  # noqa: E402

from servers import SERVER_MODES  # noqa: E402

PYWSGI = next(m for m in SERVER_MODES if m.name == "pywsgi")
CONFIG = history.HistoryConfig(100, 300)
#: The test project's WS4REDIS_EXPIRE, for both ways of publishing.
EXPIRE = 10
#: What the reconnection is said to have caused: the commands a recovery may send, and the rest under "other".
WATCHED = ("xrange", "hmget", "mget", "subscribe", "unsubscribe", "eval", "publish", "info")


#: Where the JSON lines are also written (--out), if anywhere.
OUT: List[Path] = []


def emit(line: dict) -> None:
    print(json.dumps(line), flush=True)
    for path in OUT:
        with path.open("a") as out:
            out.write(json.dumps(line) + "\n")


def commandstats(redis) -> Dict[str, dict]:
    return {name.removeprefix("cmdstat_"): value for name, value in redis.info("commandstats").items()}


def command_deltas(before: Dict[str, dict], after: Dict[str, dict]) -> Dict[str, int]:
    calls = {name: after[name]["calls"] - before.get(name, {}).get("calls", 0) for name in after}
    return {name: n for name, n in sorted(calls.items()) if n}


def redis_cpu(redis) -> float:
    cpu = redis.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def server_cpu(server: Server) -> float:
    assert server.proc is not None
    times = psutil.Process(server.proc.pid).cpu_times()
    return times.user + times.system


def listeners(server: Server) -> int:
    with urllib.request.urlopen(server.http + "/stats", timeout=10) as response:
        hubs = json.loads(response.read())["hubs"]
    return sum(hub["listeners"] for hub in hubs)


def wait_for_listeners(server: Server, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while listeners(server) != count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server still holds {listeners(server)} sockets, not {count}")
        time.sleep(0.1)


def publish(redis, name: str, payload: bytes, config: history.HistoryConfig = CONFIG) -> int:
    """Publish with history to ``broadcast:<name>``, as the library does (one EVAL)."""
    args = history.publish_args(f"broadcast:{name}", None, config, payload, EXPIRE)
    return int(redis.execute_command("EVAL", history.PUBLISH_SCRIPT, *args))


def recover_url(server: Server, name: str, positions: Optional[dict] = None) -> str:
    value = "" if positions is None else "=" + urllib.parse.quote(json.dumps(positions))
    return f"{server.ws}/ws/{name}?subscribe-broadcast&recover{value}"


async def open_all(urls: List[str], batch: int = 200) -> List[ClientConnection]:
    conns: List[ClientConnection] = []
    for start in range(0, len(urls), batch):
        conns += await asyncio.gather(*(connect(url, ping_interval=None, max_queue=None, open_timeout=60)
                                        for url in urls[start:start + batch]))
    return conns


# -- 1. the reconnect storm ------------------------------------------------------------


async def storm(server: Server, redis: RedisServer, case: str, clients: int, missed: int) -> dict:
    client = redis.client()
    name = f"storm-{case}"
    publish(client, name, b"before")  # the channel has an epoch, and the clients a position in it
    anchor = await connect(f"{server.ws}/ws/{name}?subscribe-broadcast", ping_interval=None) if case == "warm" else None
    conns = await open_all([recover_url(server, name)] * clients)
    positions = []
    for ws in conns:
        report = json.loads(await ws.recv())
        positions.append({"broadcast": {k: report["channels"]["broadcast"][k] for k in ("epoch", "offset")}})
    await asyncio.gather(*(ws.close() for ws in conns))
    await asyncio.to_thread(wait_for_listeners, server, 1 if anchor else 0)
    for i in range(missed):
        publish(client, name, f"missed {i}".encode())
    if anchor is not None:
        for _ in range(missed):
            await anchor.recv()  # the worker has heard them all
    if case == "restarted":
        server.stop()
        server.start()
    await asyncio.sleep(1.5)  # a reading of the hub's own INFO falls outside the window less often
    stats_before, server_before, client_before = commandstats(client), server_cpu(server), time.process_time()
    started = time.perf_counter()
    done: List[float] = []
    bad: List[str] = []

    async def reconnect(position: dict) -> ClientConnection:
        ws = await connect(recover_url(server, name, position), ping_interval=None, max_queue=None, open_timeout=60)
        report = json.loads(await ws.recv())
        got = [json.loads(await ws.recv())["data"] for _ in range(report["missed"])]
        if not report["recovered"] or got != [f"missed {i}" for i in range(missed)]:
            bad.append(f"{report} {got}")
        done.append(time.perf_counter() - started)
        return ws

    conns = await asyncio.gather(*(reconnect(p) for p in positions))
    wall = time.perf_counter() - started
    server_used, client_used = server_cpu(server) - server_before, time.process_time() - client_before
    deltas = command_deltas(stats_before, commandstats(client))
    await asyncio.gather(*(ws.close() for ws in conns))
    if anchor is not None:
        await anchor.close()
    await asyncio.to_thread(wait_for_listeners, server, 0)
    done.sort()
    return {
        "measurement": "reconnect", "case": case, "clients": clients, "missed": missed, "recovered": clients - len(bad),
        "errors": bad[:3], "wall_s": round(wall, 2), "p50_s": round(done[len(done) // 2], 2),
        "p99_s": round(done[min(len(done) - 1, len(done) * 99 // 100)], 2),
        "server_cpu_s": round(server_used, 2), "client_cpu_s": round(client_used, 2),
        "redis_commands": {k: deltas.get(k, 0) for k in WATCHED} | {"other": sum(n for k, n in deltas.items() if k not in WATCHED)},
        "redis_other": {k: n for k, n in deltas.items() if k not in WATCHED},
    }


# -- 2. the cost ------------------------------------------------------------------------


def redis_cost(redis: RedisServer, publications: int, batch: int = 1) -> dict:
    """Redis' time per publication with history and without; ``batch`` publications per round trip.

    One per round trip is RedisPublisher's case (a view publishing once); a
    batch of 200 that of a busy hub, whose command pipeline shares round trips.
    """
    client = redis.client()
    payload = b"x" * 100
    out: dict = {"measurement": "redis_cost", "publications": publications, "payload_bytes": len(payload), "batch": batch}
    for way in ("history", "plain"):
        before, cpu_before = commandstats(client), redis_cpu(client)
        pipe = client.pipeline(transaction=False)
        for n in range(publications):
            if way == "history":
                channel = "broadcast:cost-redis"
                pipe.execute_command("EVAL", history.PUBLISH_SCRIPT, *history.publish_args(channel, None, CONFIG, payload, EXPIRE))
            else:
                pipe.execute_command("PUBLISH", "broadcast:cost-redis-plain", payload)
                pipe.execute_command("SET", "broadcast:cost-redis-plain", payload, "EX", EXPIRE)
            if (n + 1) % batch == 0 or n + 1 == publications:
                pipe.execute()
        cpu, after = redis_cpu(client) - cpu_before, commandstats(client)
        usec = {name: after[name]["usec"] - before.get(name, {}).get("usec", 0) for name in after}
        calls = command_deltas(before, after)
        top = ["eval"] if way == "history" else ["publish", "set"]
        out[way] = {
            "commandstats_us_per_publication": round(sum(usec[n] for n in top) / publications, 2),
            "cpu_us_per_publication": round(cpu / publications * 1e6, 2),
            "calls": {k: v for k, v in calls.items() if k not in ("info", "client")},
            "usec_per_call": {n: round((after[n]["usec"] - before.get(n, {}).get("usec", 0)) / calls[n], 2)
                              for n in calls if n not in ("info", "client")},
        }
    for figure, ratio in (("commandstats_us_per_publication", "ratio_commandstats"), ("cpu_us_per_publication", "ratio_cpu")):
        out[ratio] = round(out["history"][figure] / out["plain"][figure], 2)
    return out


async def server_cost(on: Server, off: Server, redis: RedisServer, subscribers: int, rate: float, seconds: float, opted: bool) -> dict:
    client = redis.client()
    suffix = "opted" if opted else "plain"
    on_url = recover_url(on, f"cost-on-{suffix}") if opted else f"{on.ws}/ws/cost-on-{suffix}?subscribe-broadcast"
    on_conns = await open_all([on_url] * subscribers)
    off_conns = await open_all([f"{off.ws}/ws/cost-off-{suffix}?subscribe-broadcast"] * subscribers)
    if opted:
        for ws in on_conns:
            await ws.recv()  # the recovery report
    messages = round(rate * seconds)
    counts = [0] * (2 * subscribers)

    async def drain(i: int, ws: ClientConnection) -> None:
        while counts[i] < messages:
            await ws.recv()
            counts[i] += 1

    reading = asyncio.gather(*(drain(i, ws) for i, ws in enumerate(on_conns + off_conns)))
    await asyncio.sleep(0.5)
    cpu_before = {"on": server_cpu(on), "off": server_cpu(off)}
    payload = b"y" * 100
    started = time.monotonic()
    for n in range(messages):
        publish(client, f"cost-on-{suffix}", payload)
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("PUBLISH", f"broadcast:cost-off-{suffix}", payload)
        pipe.execute_command("SET", f"broadcast:cost-off-{suffix}", payload, "EX", EXPIRE)
        pipe.execute()
        await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
    try:
        await asyncio.wait_for(reading, timeout=30)
    except asyncio.TimeoutError:
        pass
    used = {"on": server_cpu(on) - cpu_before["on"], "off": server_cpu(off) - cpu_before["off"]}
    await asyncio.gather(*(ws.close() for ws in on_conns + off_conns))
    deliveries = subscribers * messages
    per = {k: round(v / deliveries * 1e6, 2) for k, v in used.items()}
    return {
        "measurement": "server_cost", "sockets_on": "opted in" if opted else "plain", "subscribers": subscribers, "rate": rate,
        "seconds": seconds, "deliveries": deliveries, "received_on": sum(counts[:subscribers]),
        "received_off": sum(counts[subscribers:]), "server_cpu_s": {k: round(v, 2) for k, v in used.items()},
        "server_cpu_us_per_delivery": per, "ratio": round(per["on"] / per["off"], 2) if per["off"] else None,
    }


# -- 3. the memory ----------------------------------------------------------------------


def memory(redis: RedisServer) -> dict:
    client = redis.client()
    out: dict = {"measurement": "memory", "size": CONFIG.size, "publications": 100}
    for label, length in (("1KiB", 1024), ("100B", 100)):
        name = f"memory-{label}"
        for _ in range(100):
            publish(client, name, b"z" * length)
        stream, meta = (client.memory_usage(key(f"broadcast:{name}", None), samples=0) for key in (history.stream_key, history.meta_key))
        out[label] = {"stream_bytes": stream, "meta_bytes": meta, "per_publication_bytes": round((stream + meta) / 100, 1),
                      "overhead_per_publication_bytes": round((stream + meta) / 100 - length, 1)}
    return out


# -- the run ----------------------------------------------------------------------------


def summary(lines: List[dict]) -> str:
    out = []
    for line in lines:
        if line["measurement"] == "reconnect":
            c = line["redis_commands"]
            out.append(f"reconnect {line['case']:>9}: {line['recovered']}/{line['clients']} recovered {line['missed']} missed in "
                       f"{line['wall_s']} s (p50 {line['p50_s']} s); Redis: {c['xrange']} XRANGE, {c['hmget']} HMGET, "
                       f"{c['mget']} MGET, {c['subscribe']} SUBSCRIBE; "
                       f"CPU server {line['server_cpu_s']} s, client {line['client_cpu_s']} s")
        elif line["measurement"] == "redis_cost":
            h, p = line["history"], line["plain"]
            out.append(f"Redis per publication, {line['batch']} per round trip: "
                       f"EVAL {h['commandstats_us_per_publication']} µs vs PUBLISH+SET "
                       f"{p['commandstats_us_per_publication']} µs (commandstats, x{line['ratio_commandstats']}); process CPU "
                       f"{h['cpu_us_per_publication']} vs {p['cpu_us_per_publication']} µs (x{line['ratio_cpu']})")
        elif line["measurement"] == "server_cost":
            per = line["server_cpu_us_per_delivery"]
            out.append(f"server CPU per delivery, {line['sockets_on']} sockets on the history server: {per['on']} µs "
                       f"(history on) vs {per['off']} µs (off, plain), x{line['ratio']}")
        elif line["measurement"] == "memory":
            out.append("memory, 100 kept: " + "; ".join(f"{k}: stream {line[k]['stream_bytes']} B + meta {line[k]['meta_bytes']} B "
                                                         f"({line[k]['overhead_per_publication_bytes']} B over the payload each)"
                                                         for k in ("1KiB", "100B")))
    return "\n".join(out)


async def run(args: argparse.Namespace, workdir: Path, redis: RedisServer) -> List[dict]:
    env = {"WS4REDIS_TEST_HEARTBEAT": "", "WS4REDIS_TEST_HISTORY": f"{CONFIG.size},{CONFIG.ttl}"}
    lines: List[dict] = []
    on = Server(PYWSGI, redis.url, workdir, env)
    off = Server(PYWSGI, redis.url, workdir, {**env, "WS4REDIS_TEST_HISTORY": ""})
    try:
        on.start()
        for case in ("warm", "left", "restarted"):
            lines.append(await storm(on, redis, case, args.clients, args.missed))
            emit(lines[-1])
        for batch in (1, 200):
            lines.append(await asyncio.to_thread(redis_cost, redis, args.publications, batch))
            emit(lines[-1])
        off.start()
        for opted in (False, True):
            lines.append(await server_cost(on, off, redis, args.subscribers, args.rate, args.seconds, opted))
            emit(lines[-1])
        lines.append(memory(redis))
        emit(lines[-1])
    finally:
        off.stop()
        on.stop()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000, help="sockets of the reconnect storm")
    parser.add_argument("--missed", type=int, default=5, help="publications made while they were away")
    parser.add_argument("--publications", type=int, default=5000, help="publications each way for Redis' cost")
    parser.add_argument("--subscribers", type=int, default=500, help="sockets per server for the server's cost")
    parser.add_argument("--rate", type=float, default=20.0, help="publications per second for the server's cost")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of publications for the server's cost")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON lines to this file (replaced)")
    args = parser.parse_args()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("")
        OUT.append(args.out)
    emit(machine_line())
    lines = on_own_redis(lambda workdir, redis: run(args, workdir, redis))
    print(summary(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
