"""Write docs/benchmarks.md (and its plots) from the JSON lines of bench/compare.py.

    python bench/report.py bench/results/full.jsonl --before bench/results/before.jsonl --out docs/benchmarks.md

Every figure in a table is the median over the runs of one size, with the
min-max spread beside it when there was more than one run.  Ratios are taken
between medians of the same file, that is of one run of the whole comparison.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

ORDER = ["bare", "mw-pywsgi", "mw-gunicorn-pywsgi", "mw-gunicorn-gws", "mw-uwsgi", "mw-uwsgi-http-socket", "mw-nginx-uwsgi",
         "ws4redis06", "channels-pubsub", "channels-core"]


def load(path: Path) -> Tuple[dict, List[dict]]:
    head, rows = {}, []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        if obj.get("machine"):
            head = obj
        else:
            rows.append(obj)
    return head, rows


def rank(name: str) -> int:
    return ORDER.index(name) if name in ORDER else len(ORDER)


def groups(rows: Iterable[dict], scenario: str, key) -> Dict[tuple, List[dict]]:
    out: Dict[tuple, List[dict]] = defaultdict(list)
    for r in rows:
        if r.get("scenario") == scenario and "error" not in r:
            out[key(r)].append(r)
    return dict(sorted(out.items(), key=lambda kv: (rank(kv[0][0]), kv[0][1:])))


def med(runs: List[dict], field: str) -> Optional[float]:
    values = [r[field] for r in runs if r.get(field) is not None]
    return statistics.median(values) if values else None


def fmt(value: Optional[float], digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if digits else f"{value:.0f}"


def cell(runs: List[dict], field: str, digits: int = 1) -> str:
    values = [r[field] for r in runs if r.get(field) is not None]
    if not values:
        return "-"
    m = fmt(statistics.median(values), digits)
    if len(values) > 1 and min(values) != max(values):
        return f"{m} ({fmt(min(values), digits)}-{fmt(max(values), digits)})"
    return m


def table(header: List[str], lines: List[List[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(line) + " |" for line in lines])


def label(rows: List[dict], name: str) -> str:
    return next((r["label"] for r in rows if r.get("server") == name and r.get("label")), name)


def fanout_table(rows: List[dict], scenario: str, workers: int = 1) -> str:
    g = groups((r for r in rows if r.get("workers", 1) == workers), scenario,
               lambda r: (r["server"], r["sockets"], r["messages"], r.get("rate", 0)))
    bare = {k[1:]: med(v, "server_cpu_us_per_delivery") for k, v in g.items() if k[0] == "bare"}
    lines = []
    for (server, n, m, rate), runs in g.items():
        cpu = med(runs, "server_cpu_us_per_delivery")
        ref = bare.get((n, m, rate))
        size = f"{n:,} × {m:,}" if not rate else f"{n:,} × {fmt(rate, 0)}/s × {fmt(m / rate, 0)} s"
        lines.append([label(rows, server), size, str(len(runs)), cell(runs, "server_cpu_us_per_delivery", 2),
                      f"{cpu / ref:.2f}" if cpu and ref else "-", cell(runs, "deliveries_per_s", 0),
                      cell(runs, "lost", 0), cell(runs, "dups", 0), cell(runs, "p50_ms"), cell(runs, "p99_ms"),
                      cell(runs, "max_ms"), cell(runs, "gen_cpu_us_per_delivery", 2), busy(runs), cell(runs, "redis_cpu_s", 2)])
    return table(["server", "subscribers × messages", "runs", "server CPU µs/delivery", "× bare", "deliveries/s", "lost",
                  "dups", "p50 ms", "p99 ms", "max ms", "generator CPU µs/delivery", "cores busy: server / generator",
                  "Redis CPU s"], lines)


def busy(runs: List[dict]) -> str:
    """CPU-seconds per wall-second of the server and of the generator (medians): which of them was near its limit."""
    server = [r["server_cpu_s"] / r["wall_s"] for r in runs if r.get("wall_s")]
    gen = [r["gen_cpu_s"] / r["wall_s"] for r in runs if r.get("wall_s")]
    return f"{statistics.median(server):.2f} / {statistics.median(gen):.2f}" if server else "-"


def connections_table(rows: List[dict]) -> str:
    g = groups(rows, "connections", lambda r: (r["server"], r["sockets"]))
    lines = [[label(rows, s), f"{n:,}", str(len(runs)), cell(runs, "opened", 0), cell(runs, "held", 0), cell(runs, "open_s", 2),
              cell(runs, "rss_kib_per_socket"), cell(runs, "fds_per_socket", 2), cell(runs, "redis_clients", 0),
              cell(runs, "server_cpu_s", 2), cell(runs, "gen_cpu_s", 2)] for (s, n), runs in g.items()]
    return table(["server", "sockets", "runs", "opened", "held after 3 s", "open time s", "RSS KiB/socket", "fds/socket",
                  "Redis clients", "server CPU s", "generator CPU s"], lines)


def publish_table(rows: List[dict]) -> str:
    g = groups(rows, "publish", lambda r: (r["server"], r["sockets"], r["messages"]))
    bare = {k[1:]: med(v, "server_cpu_us_per_message") for k, v in g.items() if k[0] == "bare"}
    lines = []
    for (s, k, m), runs in g.items():
        cpu, ref = med(runs, "server_cpu_us_per_message"), bare.get((k, m))
        lines.append([label(rows, s), f"{k:,} × {m:,}", str(len(runs)), cell(runs, "server_cpu_us_per_message", 1),
                      f"{cpu / ref:.2f}" if cpu and ref else "-", cell(runs, "messages_per_s", 0), cell(runs, "lost", 0),
                      cell(runs, "p50_ms"), cell(runs, "p99_ms"), cell(runs, "gen_cpu_us_per_message", 1)])
    return table(["server", "clients × messages", "runs", "server CPU µs/message", "× bare", "round trips/s", "lost",
                  "RTT p50 ms", "RTT p99 ms", "generator CPU µs/message"], lines)


def workers_table(rows: List[dict]) -> str:
    lines = []
    for scenario in ("burst", "steady"):
        g = groups(rows, scenario, lambda r: (r["server"], r["sockets"], r["messages"], r.get("rate", 0), r.get("workers", 1)))
        for (s, n, m, rate, w), runs in g.items():
            if w != 2 or (s, n, m, rate, 1) not in g:
                continue
            one = g[(s, n, m, rate, 1)]
            eff = [med(x, "deliveries") / med(x, "server_cpu_s") if med(x, "server_cpu_s") else None for x in (one, runs)]
            rate_ = [med(x, "deliveries_per_s") for x in (one, runs)]
            size = f"{n:,} × {m:,}" if not rate else f"{n:,} × {fmt(rate, 0)}/s"
            lines.append([label(rows, s), scenario, size, fmt(eff[0], 0), fmt(eff[1], 0),
                          f"{eff[1] / eff[0]:.2f}" if all(eff) else "-", fmt(rate_[0], 0), fmt(rate_[1], 0),
                          f"{rate_[1] / rate_[0]:.2f}" if all(rate_) else "-", cell(runs, "lost", 0)])
    return table(["server", "scenario", "size", "deliveries per server CPU-s, 1 worker", "2 workers", "ratio",
                  "deliveries/s, 1 worker", "2 workers", "ratio", "lost (2 workers)"], lines)


def calibration_table(rows: List[dict]) -> str:
    g = groups(rows, "calibration", lambda r: (r["generator"], r["sockets"], r["messages"]))
    lines = [[gen, f"{n:,} × {m:,}", str(len(runs)), cell(runs, "deliveries_per_s", 0), cell(runs, "gen_cpu_us_per_delivery", 2),
              fmt(1e6 / med(runs, "gen_cpu_us_per_delivery"), 0) if med(runs, "gen_cpu_us_per_delivery") else "-",
              cell(runs, "server_cpu_us_per_delivery", 2)] for (gen, n, m), runs in g.items()]
    return table(["generator", "sockets × messages", "runs", "deliveries/s", "generator CPU µs/delivery",
                  "deliveries per generator CPU-s", "trivial server CPU µs/delivery"], lines)


def errors(rows: List[dict]) -> List[str]:
    return [f"- {r.get('server', '?')} ({r.get('scenario', 'start')}, {r.get('workers', 1)} worker(s)): {r['error']}"
            for r in rows if "error" in r]


def headline(rows: List[dict]) -> List[Tuple[str, str, Optional[float], Optional[float]]]:
    """(server, scenario size, CPU/delivery, ratio to bare) of every 1-worker burst and steady run of 1,000 subscribers."""
    out = []
    for scenario in ("burst", "steady"):
        g = groups((r for r in rows if r.get("workers", 1) == 1 and r["sockets"] == 1000), scenario,
                   lambda r: (r["server"], r["sockets"], r["messages"], r.get("rate", 0)))
        for size in sorted({k[1:] for k in g}, key=lambda k: (k[2], k[1])):
            ref = med(g.get(("bare", *size), []), "server_cpu_us_per_delivery")
            desc = f"{scenario} {size[0]:,} × {size[1]:,}" if not size[2] else f"{scenario} {size[0]:,} × {fmt(size[2], 0)}/s"
            for (s, *k), runs in g.items():
                if tuple(k) == size:
                    cpu = med(runs, "server_cpu_us_per_delivery")
                    out.append((s, desc, cpu, cpu / ref if cpu and ref else None))
    return out


def headline_table(rows: List[dict]) -> str:
    hl = headline(rows)
    columns = list(dict.fromkeys(sc for _, sc, _, _ in hl))
    pivot: Dict[str, Dict[str, str]] = defaultdict(dict)
    for s, sc, c, r in hl:
        pivot[s][sc] = f"{fmt(c, 2)} ({r:.2f}× bare)" if r else fmt(c, 2)
    return table(["server"] + columns, [[label(rows, s)] + [pivot[s].get(col, "-") for col in columns] for s in sorted(pivot, key=rank)])


def before_after(brows: List[dict], rows: List[dict]) -> str:
    before = {(s, sc): (c, r) for s, sc, c, r in headline(brows)}
    after = {(s, sc): (c, r) for s, sc, c, r in headline(rows)}
    lines = []
    for key in sorted(set(before) & set(after), key=lambda k: (rank(k[0]), k[1])):
        if key[0] == "bare":
            continue
        (bc, br), (ac, ar) = before[key], after[key]
        lines.append([label(rows, key[0]), key[1], fmt(bc, 2), f"{br:.2f}" if br else "-", fmt(ac, 2),
                      f"{ar:.2f}" if ar else "-", f"{ar / br:.2f}" if ar and br else "-"])
    return table(["server", "scenario", "before: µs/delivery", "before: × bare", "now: µs/delivery", "now: × bare",
                  "now / before (× bare)"], lines)


def plots(rows: List[dict], outdir: Path) -> List[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    outdir.mkdir(parents=True, exist_ok=True)
    made = []
    g = groups((r for r in rows if r.get("workers", 1) == 1), "burst", lambda r: (r["server"], r["sockets"], r["messages"]))
    for field, title, name in (("deliveries_per_s", "burst fan-out: deliveries per second", "burst-deliveries.png"),
                               ("p99_ms", "burst fan-out: p99 latency (ms)", "burst-p99.png"),
                               ("server_cpu_us_per_delivery", "burst fan-out: server CPU µs per delivery", "burst-cpu.png")):
        fig, ax = plt.subplots(figsize=(9.5, 4.2))
        for server in sorted({k[0] for k in g}, key=rank):
            points = sorted((k[1], med(v, field)) for k, v in g.items() if k[0] == server and med(v, field) is not None)
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label(rows, server))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("subscribers")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        fig.savefig(outdir / name, dpi=90)
        plt.close(fig)
        made.append(name)
    return made


def machine_lines(head: dict) -> str:
    keys = [("date", "date"), ("commit", "commit of this checkout"), ("cpu", "CPU"), ("cores", "cores"), ("kernel", "kernel"),
            ("python", "Python"), ("node", "Node"), ("redis", "redis-server"), ("nginx", "nginx"), ("mw", "ws4redis_mw venv"),
            ("ws4redis06", "ws4redis 0.6 venv"), ("channels", "Channels venv"), ("generator", "load generator"),
            ("processes", "generator processes"), ("argv", "compare.py arguments"),
            ("duration", "duration"), ("core_commit", "last commit of ws4redis_mw/")]
    return "\n".join(f"- {title}: {head[k] if k != 'argv' else '`' + ' '.join(head[k]) + '`'}" for k, title in keys if k in head)


def render(full: Path, before: Optional[Path], out: Path) -> str:
    head, rows = load(full)
    stamps = [r["t"] for r in [head, *rows] if "t" in r]
    if len(stamps) > 1:
        head = {**head, "duration": f"{(max(stamps) - min(stamps)) / 60:.1f} minutes from the first line to the last"}
    made = plots(rows, out.parent / "benchmarks")
    sources = full.name + (" and " + before.name if before else "")
    parts = [f"<!-- Written by bench/report.py from {sources}; edit bench/report.py, not this file. -->",
             "# Benchmarks: ws4redis_mw beside ws4redis 0.6, Django Channels and a bare gevent server", "",
             "Reproduce on your machine (about 16 minutes on 2 cores; `QUICK=1`: about a minute, written to "
             "`.cache/bench/benchmarks-quick.md`):", "", "```sh", "make bench", "```", "",
             "It installs its virtualenvs under `.cache/bench/` (`bench/setup.sh`), runs `bench/compare.py` "
             f"(the raw JSON lines go to `bench/results/{full.name}`) and this report, `bench/report.py`. "
             "Every server runs alone, one after the other, with one worker process (two in the two-workers table) and "
             "a private redis-server; the load generator runs in its own processes on the same machine.", "",
             "**The headline figure is server CPU per delivery**: user+system time of the server's whole process tree "
             "(gunicorn's arbiter and worker; uWSGI's master, HTTP router and worker; nginx with both uWSGI instances) "
             "during the run, divided by the messages the clients received. It holds on a shared machine where wall "
             "time does not. \"× bare\" divides it by the bare gevent-websocket server's figure of the same size and run. "
             "Latency is receive time minus the send time the publisher wrote into the payload (same clock). "
             "Each cell is the median of its runs, with the min-max spread in brackets.", "",
             "## Machine", "", machine_lines(head), ""]
    if headline(rows):
        parts += ["## Headline: server CPU µs per delivery, 1,000 subscribers, one worker", "", headline_table(rows), ""]
    sections = [("Calibration: the load generator against a trivial server", calibration_table(rows),
                 "The trivial server (`bench/trivial.py`) writes ready-made frames, so these rows are the generator's own "
                 "ceiling: deliveries per CPU-second of the generator, whichever of Python (`bench/loadgen.py`, raw gevent "
                 "sockets) and Node (`bench/loadgen.js`, the `ws` package) is cheaper runs the comparison."),
                ("Connections: idle sockets opened and held", connections_table(rows),
                 "\"held\" counts the sockets still open 3 s after the last one opened, as the clients see them. RSS and "
                 "descriptors are the growth over the idle server, divided by the sockets held; Redis clients are all the "
                 "server's connections to its Redis while the sockets are open."),
                ("Burst fan-out: N subscribers of one facility, M messages published at once", fanout_table(rows, "burst"),
                 "Messages are PUBLISHed in pipelines of 100 (Channels: `group_send` one after the other). "
                 "deliveries/s is deliveries divided by the time from the first publish to the last delivery."),
                ("Steady fan-out: N subscribers, R messages per second", fanout_table(rows, "steady"),
                 "At a fixed rate deliveries/s is set by the publisher; CPU per delivery and latency are the figures."),
                ("Client publish: round trips through the server", publish_table(rows),
                 "K clients, each on a facility of its own with `publish-broadcast&echo`, each sending its next message "
                 "when the echo of the previous one came back: client -> server -> Redis PUBLISH -> server -> client."),
                ("Two workers against one", workers_table(rows),
                 "The same burst and steady runs with 2 worker processes (gunicorn `-w 2`, uWSGI `--processes 2`, the bare "
                 "server pre-forked). Deliveries per server CPU-second should stay flat (a ratio near 1): every worker "
                 "holds its own subscription and encodes each message for its own sockets.")]
    for title, body, note in sections:
        if body.count("\n") >= 2:
            parts += [f"## {title}", "", note, "", body, ""]
    if made:
        parts += ["## Plots", "", "One point per size of the burst table, medians, log scales (the sizes differ in messages "
                  "as well as subscribers: read the table for those).", ""] + [f"![{m}](benchmarks/{m})" for m in made] + [""]
    if before:
        bhead, brows = load(before)
        parts += ["## Before: the core at commit 64c07a4", "",
                  "Measured early, on the code as it was before the core's redesign, with this command "
                  f"(on {bhead.get('date', '?')}, commit `{bhead.get('commit', '?')}`, generator {bhead.get('generator', '?')}):", "",
                  "```sh", "cd bench && ../.cache/bench/mw/bin/python compare.py " + " ".join(bhead.get("argv", [])), "```", "",
                  "These figures come from another run than the tables above: compare ratios inside one table only.", "",
                  headline_table(brows), "",
                  "Each core against the bare server of its own run (× bare), for the servers and sizes both runs have:", "",
                  before_after(brows, rows), "", fanout_table(brows, "burst"), "", fanout_table(brows, "steady"), ""]
    notes = full.parent / "notes.md"
    if notes.exists():
        parts += ["## Notes on this run", "", notes.read_text().strip(), ""]
    problems = errors(rows)
    if problems:
        parts += ["## What did not run", ""] + problems + [""]
    # Hand-written from other runs (compare.py's density sizes, uWSGI's density, bench/history.py, bench/cluster.py): kept as written, last.
    for name in ("density.md", "uwsgi-density.md", "history.md", "cluster.md"):
        kept = full.parent / name
        if kept.exists():
            parts += [kept.read_text().strip(), ""]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--before", default=None)
    parser.add_argument("--out", default="docs/benchmarks.md")
    parser.add_argument("--headline", action="store_true", help="print the headline table only (the README quotes it)")
    args = parser.parse_args()
    if args.headline:
        print(headline_table(load(Path(args.results))[1]))
        return
    out = Path(args.out)
    text = render(Path(args.results), Path(args.before) if args.before else None, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
