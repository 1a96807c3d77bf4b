"""The side-by-side benchmark: every contender, every scenario, one JSON line per run.

    python bench/compare.py --out .cache/bench/results.jsonl            # what `make bench` runs
    python bench/compare.py --quick                                       # the 1-minute subset
    python bench/compare.py --servers mw-uwsgi,bare --scenarios burst,steady --burst 1000x200

For each contender (bench/contenders.py) it starts a private redis-server and
the server, then the load generator's processes (bench/loadgen.js or
bench/loadgen.py; ``--generator``), and runs the scenarios:

  connections  open N idle sockets, wait 3 s, count those still open ("held");
               server RSS, descriptors and Redis clients per socket
  burst        N subscribers of one facility, M messages published at once
  steady       N subscribers, R messages/s for D seconds
  publish      K clients each send M messages through their socket (each after
               the echo of the previous one), on a facility of their own with echo
  workers      (not a scenario of its own: burst and steady rerun with 2 workers)

The headline figure is the server's CPU time per delivery: user+system time
of the server's whole process tree (gunicorn's arbiter and workers, uWSGI's
master, router and workers, nginx and both uWSGIs) during the run, divided by
the messages the clients got.  The generator's CPU is measured the same way,
beside it.  Every process started here is stopped by its PID in a ``finally``,
and SIGTERM/SIGINT/SIGHUP unwind to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import psutil
from contenders import BY_NAME, CONTENDERS, Contender, generator_command, generator_env, node_binary, trivial_mode

from servers import RedisServer, Server, stop_process

HERE = Path(__file__).resolve().parent


# -- processes -------------------------------------------------------------------------

def tree_cpu(pids: List[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def tree_pids(server: Server) -> List[int]:
    try:
        return server.pids()
    except psutil.NoSuchProcess:
        return []


def tree_sum(pids: List[int], what: str) -> int:
    total = 0
    for pid in pids:
        try:
            p = psutil.Process(pid)
            total += p.memory_info().rss if what == "rss" else p.num_fds()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


class Generators:
    """The load generator's processes, driven in step over their stdin/stdout (bench/loadgen.py's protocol)."""

    def __init__(self, kind: str, processes: int, port: int, path: str, count: int):
        self.procs: List[subprocess.Popen] = []
        self.count = count
        self.buffers: Dict[int, bytes] = {}
        share = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
        offset = 0
        try:
            for n in share:
                if n == 0:
                    continue
                spec = json.dumps({"host": "127.0.0.1", "port": port, "path": path, "count": n, "offset": offset})
                offset += n
                proc = subprocess.Popen(generator_command(kind, spec), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        env=generator_env(), bufsize=0)
                self.procs.append(proc)
                self.buffers[proc.pid] = b""
        except BaseException:
            self.stop()
            raise

    def read_all(self, timeout: float) -> List[dict]:
        deadline = time.monotonic() + timeout
        replies: Dict[int, dict] = {}
        while len(replies) < len(self.procs):
            waiting = [p for p in self.procs if p.pid not in replies]
            for p in waiting:
                buf = self.buffers[p.pid]
                if b"\n" in buf:
                    line, _, self.buffers[p.pid] = buf.partition(b"\n")
                    replies[p.pid] = json.loads(line)
            waiting = [p for p in self.procs if p.pid not in replies]
            if not waiting:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"load generator silent for {timeout}s")
            ready, _, _ = select.select([p.stdout for p in waiting], [], [], left)
            for p in waiting:
                if p.stdout in ready:
                    chunk = os.read(p.stdout.fileno(), 1 << 20)
                    if not chunk:
                        raise RuntimeError(f"load generator {p.pid} exited ({p.wait()})")
                    self.buffers[p.pid] += chunk
        return [replies[p.pid] for p in self.procs]

    def ask(self, cmd: dict, timeout: float = 60) -> List[dict]:
        line = (json.dumps(cmd) + "\n").encode()
        for p in self.procs:
            p.stdin.write(line)
        return self.read_all(timeout)

    def cpu(self) -> float:
        return tree_cpu([p.pid for p in self.procs])

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.stdin.write(b'{"cmd": "close"}\n')
                except OSError:
                    pass
        for p in self.procs:
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                stop_process(p)
        self.procs = []


def merge(replies: List[dict]) -> dict:
    hist: Dict[int, int] = {}
    for r in replies:
        for k, v in r.get("hist", {}).items():
            hist[int(k)] = hist.get(int(k), 0) + v
    return {"received": sum(r.get("received", 0) for r in replies), "dups": sum(r.get("dups", 0) for r in replies),
            "open": sum(r.get("open", 0) for r in replies), "sent": sum(r.get("sent", 0) for r in replies),
            "last_ms": max((r.get("last_ms", 0) for r in replies), default=0), "hist": hist}


def quantiles(hist: Dict[int, int]) -> Dict[str, Optional[float]]:
    total = sum(hist.values())
    if not total:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    out, seen, keys = {}, 0, sorted(hist)
    targets = [("p50_ms", 0.5), ("p99_ms", 0.99)]
    for k in keys:
        seen += hist[k]
        while targets and seen >= targets[0][1] * total:
            out[targets.pop(0)[0]] = round(max(k, 0) / 10, 1)
    out["max_ms"] = round(max(keys[-1], 0) / 10, 1)
    return out


# -- one contender running -------------------------------------------------------------

class Stack:
    """A private redis-server and one contender (or the calibration server) on it."""

    def __init__(self, contender: Optional[Contender], workers: int, workdir: Path, generator: str, processes: int, mode=None):
        self.contender, self.workers, self.generator, self.processes = contender, workers, generator, processes
        self.redis = RedisServer(workdir)
        self.redis.start()
        try:
            self.port_hint = None
            env = contender.env(self.redis.url) if contender else {}
            if mode is None:
                from servers import free_port
                port = free_port()
                mode = contender.mode(port, workdir, self.redis.url, workers)
            self.server = Server(mode, self.redis.url, workdir, env)
            self.server.start()
            time.sleep(0.5)  # workers forked, imports done
            self.client = self.redis.client()
        except BaseException:
            self.redis.stop()
            raise

    def stop(self) -> None:
        try:
            self.server.stop()
        finally:
            self.redis.stop()

    def cpu(self) -> float:
        return tree_cpu(tree_pids(self.server))

    def redis_cpu(self) -> float:
        return tree_cpu([self.redis.proc.pid])

    def generators(self, path: str, count: int) -> Generators:
        gens = Generators(self.generator, self.processes, self.server.port, path, count)
        try:
            replies = gens.read_all(timeout=120)
            ready = {"opened": sum(r["opened"] for r in replies), "failed": sum(r["failed"] for r in replies),
                     "errors": [e for r in replies for e in r["errors"]][:3]}
        except BaseException:
            gens.stop()
            raise
        gens.ready = ready  # type: ignore[attr-defined]
        return gens

    def clients(self, scenario: str, n: int) -> Generators:
        """n connected clients for a fan-out (one facility) or a client-publish run (a facility each)."""
        c = self.contender
        if scenario == "publish":
            gens = self.generators(c.pub_path, n)
            self.wait_subscribed([f"broadcast:rt{i}" for i in range(n)], max(c.numsub_per_socket, 1))
        else:
            gens = self.generators(c.sub_path if c else "/ws/bench", n)
            self.wait_subscribed(["broadcast:bench"], (c.numsub_per_socket * gens.ready["opened"]) or 1 if c else 1)
        return gens

    def wait_subscribed(self, channels: List[str], per_channel: int) -> None:
        """Until Redis shows the subscriptions (Channels' are not named here: a fixed pause)."""
        if self.contender is None or self.contender.layer:
            time.sleep(1.0)
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            counts = dict(self.client.pubsub_numsub(*channels)) if channels else {}
            patterns = self.client.pubsub_numpat()
            if patterns or all(counts.get(c.encode(), 0) >= per_channel for c in channels):
                break
            time.sleep(0.1)
        time.sleep(0.3)

    def publish(self, messages: int, rate: float) -> dict:
        c = self.contender
        spec = {"redis": self.redis.url, "messages": messages, "rate": rate}
        env = dict(os.environ)
        if c and c.layer:
            spec.update(layer=c.layer, group="bench")
            env.update(c.env(self.redis.url))
        else:
            spec["channel"] = "broadcast:bench"
        out = subprocess.run([c.python if c else sys.executable, str(HERE / "publisher.py"), json.dumps(spec)],
                             env=env, cwd=HERE, stdout=subprocess.PIPE, check=True, timeout=max(60, 3 * messages / (rate or 1000)))
        return json.loads(out.stdout)


def wait_delivered(gens: Generators, expected: int, idle: float, limit: float) -> None:
    """Until every message is in, or, once some came, nothing more came for ``idle`` seconds, or ``limit`` seconds passed."""
    last, since, start = 0, time.monotonic(), time.monotonic()
    while time.monotonic() - start < limit:
        got = sum(r["received"] for r in gens.ask({"cmd": "count"}))
        if got >= expected:
            return
        if got != last:
            last, since = got, time.monotonic()
        elif got and time.monotonic() - since > idle:
            return
        time.sleep(0.1)


# -- scenarios ---------------------------------------------------------------------------

def connections(stack: Stack, n: int) -> dict:
    pids = tree_pids(stack.server)
    rss0, fds0 = tree_sum(pids, "rss"), tree_sum(pids, "fds")
    cpu0, started = stack.cpu(), time.monotonic()
    gens = stack.generators(stack.contender.sub_path, n)
    try:
        open_s = time.monotonic() - started
        opened = gens.ready["opened"]
        time.sleep(3)
        held = merge(gens.ask({"cmd": "count"}))["open"]
        pids = tree_pids(stack.server)
        rss, fds = tree_sum(pids, "rss") - rss0, tree_sum(pids, "fds") - fds0
        clients = len(stack.client.client_list()) - 1  # all but this one
        gen_cpu = gens.cpu()
    finally:
        gens.stop()
    per = max(held, 1)
    return {"sockets": n, "opened": opened, "held": held, "failed": gens.ready["failed"], "errors": gens.ready["errors"],
            "open_s": round(open_s, 2), "rss_kib_per_socket": round(rss / per / 1024, 1), "fds_per_socket": round(fds / per, 2),
            "redis_clients": clients, "server_cpu_s": round(stack.cpu() - cpu0, 3), "gen_cpu_s": round(gen_cpu, 3)}


def fanout(stack: Stack, gens: Generators, messages: int, rate: float, late: float) -> dict:
    """One publish run to the connected subscribers; a message not in ``late`` s after the last publish is lost."""
    opened = gens.ready["opened"]
    gens.ask({"cmd": "reset"})
    cpu0, gen0, redis0 = stack.cpu(), gens.cpu(), stack.redis_cpu()
    if stack.contender is None:  # calibration: the trivial server bursts on SIGUSR1
        start_ms = time.time() * 1000.0
        os.kill(stack.server.proc.pid, signal.SIGUSR1)
    else:
        start_ms = stack.publish(messages, rate)["start_ms"]
    expected = opened * messages
    wait_delivered(gens, expected, idle=3.0, limit=late)
    r = merge(gens.ask({"cmd": "report"}))
    cpu, gen_cpu, redis_cpu = stack.cpu() - cpu0, gens.cpu() - gen0, stack.redis_cpu() - redis0
    got = r["received"]
    wall = max((r["last_ms"] - start_ms) / 1000.0, 1e-6) if got else None
    return {"sockets": gens.count, "opened": opened, "messages": messages, "rate": rate, "deliveries": got, "expected": expected,
            "lost": expected - got, "dups": r["dups"], "wall_s": round(wall, 3) if wall else None,
            "deliveries_per_s": round(got / wall) if wall else 0, **quantiles(r["hist"]),
            "server_cpu_s": round(cpu, 3), "server_cpu_us_per_delivery": round(cpu / got * 1e6, 2) if got else None,
            "gen_cpu_s": round(gen_cpu, 3), "gen_cpu_us_per_delivery": round(gen_cpu / got * 1e6, 2) if got else None,
            "redis_cpu_s": round(redis_cpu, 3)}


def client_publish(stack: Stack, gens: Generators, messages: int) -> dict:
    opened = gens.ready["opened"]
    gens.ask({"cmd": "reset"})
    cpu0, gen0, redis0 = stack.cpu(), gens.cpu(), stack.redis_cpu()
    started = time.monotonic()
    r = merge(gens.ask({"cmd": "publish", "messages": messages, "timeout": 60}, timeout=90))
    wall = time.monotonic() - started
    cpu, gen_cpu, redis_cpu = stack.cpu() - cpu0, gens.cpu() - gen0, stack.redis_cpu() - redis0
    got = r["received"]
    return {"sockets": gens.count, "opened": opened, "messages": messages, "sent": r["sent"], "deliveries": got,
            "lost": r["sent"] - got, "dups": r["dups"], "wall_s": round(wall, 3), "messages_per_s": round(got / wall),
            **quantiles(r["hist"]), "server_cpu_s": round(cpu, 3),
            "server_cpu_us_per_message": round(cpu / got * 1e6, 2) if got else None,
            "gen_cpu_s": round(gen_cpu, 3), "gen_cpu_us_per_message": round(gen_cpu / got * 1e6, 2) if got else None,
            "redis_cpu_s": round(redis_cpu, 3)}


# -- the plan ------------------------------------------------------------------------------

def sizes(text: str) -> List[List[int]]:
    """"1000x1000,100x10000" -> [[1000, 1000], [100, 10000]]."""
    return [[int(float(v)) for v in item.split("x")] for item in text.split(",") if item]


PLANS = {
    "full": dict(connections="1000,5000", burst="1000x1000,5000x100", steady="1000x10x20,1000x100x20",
                 publish="100x50", workers_burst="1000x1000", workers_steady="1000x100x20", runs=3,
                 skip="mw-pywsgi:steady,mw-gunicorn-pywsgi:steady,channels-core:steady", steady_runs=1, calibration="1000x200"),
    "quick": dict(connections="1000", burst="1000x200", steady="1000x100x3", publish="50x50",
                  workers_burst="1000x200", workers_steady="", runs=1, steady_runs=1, calibration="1000x200"),
    "smoke": dict(connections="5", burst="3x5", steady="3x20x0.5", publish="2x3", workers_burst="3x5",
                  workers_steady="3x20x0.5", runs=1, steady_runs=1, calibration="4x20"),
}


def plan_runs(c: Contender, args) -> Iterator[tuple]:
    """(workers, scenario, params) in the order they run against one contender."""
    for w in (1, 2) if "workers" in args.scenarios and c.max_workers >= 2 and c.name in args.workers_servers else (1,):
        if w == 1:
            if "connections" in args.scenarios:
                for (n,) in sizes(args.connections):
                    yield w, "connections", {"n": n}, 0
            burst, steady = args.burst, args.steady
        else:
            burst, steady = args.workers_burst, args.workers_steady
        if "burst" in args.scenarios or w == 2:
            for n, m in sizes(burst):
                for run in range(min(args.runs, c.max_runs)):
                    yield w, "burst", {"n": n, "messages": m, "rate": 0}, run
        if "steady" in args.scenarios or w == 2:
            for n, rate, seconds in ([int(a), float(b), float(c)] for a, b, c in (s.split("x") for s in steady.split(",") if s)):
                for run in range(args.steady_runs):
                    yield w, "steady", {"n": n, "messages": max(1, int(rate * seconds)), "rate": rate}, run
        if w == 1 and "publish" in args.scenarios:
            for k, m in sizes(args.publish):
                for run in range(min(args.runs, c.max_runs)):
                    yield w, "publish", {"k": k, "messages": m}, run


def run_contender(c: Contender, args, emit) -> None:
    by_workers: Dict[int, List[tuple]] = {}
    for item in plan_runs(c, args):
        if f"{c.name}:{item[1]}" not in args.skip:
            by_workers.setdefault(item[0], []).append(item)
    for workers, items in by_workers.items():
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            try:
                stack = Stack(c, workers, Path(tmp), args.generator, args.processes)
            except Exception as exc:
                emit({"server": c.name, "workers": workers, "error": f"did not start: {exc!r}"})
                continue
            gens: Optional[Generators] = None
            held: Optional[tuple] = None  # (scenario kind, sockets) the connected clients were opened for
            try:
                for _, scenario, p, run in items:
                    base = {"scenario": scenario, "server": c.name, "label": c.label, "workers": workers,
                            "generator": args.generator, "run": run}
                    try:
                        kind = "publish" if scenario == "publish" else "fanout"
                        n = p.get("n", p.get("k"))
                        if gens is not None and (scenario == "connections" or held != (kind, n)):
                            gens.stop()
                            gens = None
                        if scenario == "connections":
                            result = connections(stack, n)
                        else:
                            if gens is None:
                                gens, held = stack.clients(kind, n), (kind, n)
                            if scenario == "publish":
                                result = client_publish(stack, gens, p["messages"])
                            else:
                                late = args.late + (p["messages"] / p["rate"] if p["rate"] else 0)
                                result = fanout(stack, gens, p["messages"], p["rate"], late)
                            if result["lost"] or result["dups"]:
                                # What is still on its way would count in (and load) the next run: start afresh.
                                gens.stop()
                                gens = None
                                stack.stop()
                                stack = Stack(c, workers, Path(tmp), args.generator, args.processes)
                    except Exception as exc:
                        result = {"error": repr(exc), **p}
                        if gens is not None:
                            gens.stop()
                            gens = None
                    emit({**base, **result})
                    if stack.server.proc is None or stack.server.proc.poll() is not None:
                        emit({**base, "error": "the server is not running any more"})
                        break
            finally:
                if gens is not None:
                    gens.stop()
                stack.stop()


def calibrate(args, emit) -> None:
    """Each generator against the trivial server: how many deliveries per CPU-second it can take."""
    kinds = ["python"] + (["node"] if node_binary() else [])
    n, m = sizes(args.calibration)[0]
    for kind in kinds:
        for run in range(min(args.runs, 2)):
            with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
                stack = Stack(None, 1, Path(tmp), kind, args.processes, mode=trivial_mode(m))
                gens = None
                try:
                    gens = stack.clients("fanout", n)
                    result = fanout(stack, gens, m, 0, args.late)
                finally:
                    if gens is not None:
                        gens.stop()
                    stack.stop()
            emit({"scenario": "calibration", "server": "trivial", "generator": kind, "run": run, "workers": 1, **result})


def machine() -> dict:
    def version(cmd: List[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not found"

    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import importlib.metadata as md

    def pkg(python: str, names: str) -> str:
        code = f"import importlib.metadata as m\nfor n in {names.split()!r}:\n  try: print(n, m.version(n))\n  except Exception: pass"
        try:
            return ", ".join(subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=30).stdout.split("\n")[:-1])
        except OSError:
            return "not installed"

    from contenders import CACHE
    return {"machine": True, "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "node": version(["node", "--version"]),
            "redis": version(["redis-server", "--version"]),
            "nginx": version(["sh", "-c", "(nginx -v || /usr/sbin/nginx -v) 2>&1"]),
            "mw": ", ".join(f"{n} {md.version(n)}" for n in ("ws4redis_mw", "gevent", "gevent-websocket", "redis", "Django",
                                                             "gunicorn", "uWSGI") if _has(md, n)),
            "ws4redis06": pkg(str(CACHE / "ws4redis06/bin/python"), "django-websocket-redis Django redis gevent uWSGI"),
            "channels": pkg(str(CACHE / "channels/bin/python"), "channels channels_redis daphne Django redis"),
            "commit": version(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"]),
            "core_commit": version(["git", "-C", str(HERE.parent), "log", "-1", "--format=%h %s", "--", "ws4redis_mw"])[:90],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def _has(md, name: str) -> bool:
    try:
        md.version(name)
        return True
    except md.PackageNotFoundError:
        return False


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", choices=sorted(PLANS), default="full", help="the sizes below at once (default full)")
    parser.add_argument("--quick", action="store_const", const="quick", dest="plan", help="--plan quick")
    parser.add_argument("--servers", default=",".join(c.name for c in CONTENDERS), help="comma-separated contender names")
    parser.add_argument("--scenarios", default="calibration,connections,burst,steady,publish,workers")
    parser.add_argument("--workers-servers", default="mw-gunicorn-gws,bare",
                        help="contenders rerun with 2 worker processes (the workers scenario)")
    for name in ("connections", "burst", "steady", "publish", "workers_burst", "workers_steady", "runs", "steady_runs",
                 "calibration", "skip"):
        parser.add_argument("--" + name.replace("_", "-"), default=None,
                            help={"connections": "sockets, e.g. 1000,5000", "burst": "NxM: N subscribers, M messages",
                                  "steady": "NxRxS: N subscribers, R msg/s, S seconds", "publish": "KxM: K clients, M messages each",
                                  "runs": "runs of each burst and publish size (the median is reported); connections: one run",
                                  "calibration": "NxM against the trivial server",
                                  "skip": "server:scenario pairs not to run (full plan: the steady runs of the two pywsgi "
                                          "modes, whose core is the same as under gunicorn GeventWebSocketWorker, and of "
                                          "Channels' default layer, as overloaded as the pubsub one)"}.get(name))
    parser.add_argument("--generator", choices=["node", "python", "auto"], default="auto",
                        help="auto: node when bench/setup.sh installed it, else python")
    parser.add_argument("--late", type=float, default=8.0,
                        help="seconds after the last publish (burst: after the publish) a message may still come; later is lost")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--out", default=None, help="append the JSON lines here too")
    args = parser.parse_args(argv)
    for key, value in PLANS[args.plan].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.runs, args.steady_runs = int(args.runs), int(args.steady_runs)
    args.scenarios = set(args.scenarios.split(","))
    args.workers_servers = set(args.workers_servers.split(","))
    args.skip = set((args.skip or "").split(","))
    if args.generator == "auto":
        args.generator = "node" if node_binary() else "python"

    out = open(args.out, "a") if args.out else None

    def emit(obj: dict) -> None:
        line = json.dumps({**obj, "t": round(time.time(), 1)})
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    def unwind(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, unwind)
    try:
        emit({**machine(), "plan": args.plan, "generator": args.generator, "processes": args.processes,
              "argv": sys.argv[1:] if argv is None else argv})
        if "calibration" in args.scenarios:
            calibrate(args, emit)
        for name in filter(None, args.servers.split(",")):
            c = BY_NAME[name]
            reason = c.missing()
            if reason:
                emit({"server": name, "error": f"skipped: {reason}"})
                continue
            run_contender(c, args, emit)
    except KeyboardInterrupt:
        print("interrupted: every process started here is stopped", file=sys.stderr)
        return 130
    finally:
        if out:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
