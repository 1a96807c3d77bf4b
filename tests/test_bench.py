"""bench/compare.py and bench/history.py cannot rot: a smoke run of every scenario against every ws4redis_mw server mode.

A few sockets and a few messages, seconds each, with the Python load generator
(nothing outside the test virtualenv).  Nothing here asserts a time or a rate:
only that every message arrived once, every socket was held, every JSON line
is whole, the report renders, and no process is left behind, interrupted or not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import psutil
import pytest

from conftest import require
from servers import ROOT, nginx_binary, redis_server_binary, uwsgi_missing

BENCH = ROOT / "bench"
# The smoke run takes about a minute; a broken server makes every run wait out its limits.
pytestmark = pytest.mark.timeout(600)
MW = ["mw-pywsgi", "mw-gunicorn-pywsgi", "mw-gunicorn-gws", "mw-uwsgi", "mw-uwsgi-http-socket", "mw-nginx-uwsgi"]
SERVERS = ["bare", *MW]


def tools() -> None:
    require(redis_server_binary() is not None, "redis-server is not installed (apt-get install redis-server)")
    require(uwsgi_missing() is None, f"{uwsgi_missing()}")
    require(nginx_binary() is not None, "nginx is not installed (apt-get install nginx)")


def left_behind(token: str) -> list:
    """Processes that inherited the run's marker and still exist."""
    found = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if proc.environ().get("BENCH_SMOKE_TOKEN") == token:
                found.append(f"{proc.pid} {' '.join(proc.cmdline())[:200]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def start(token: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "BENCH_SMOKE_TOKEN": token}
    return subprocess.Popen([sys.executable, str(BENCH / "compare.py"), "--plan", "smoke", "--generator", "python", *args],
                            cwd=BENCH, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    tools()
    token = uuid.uuid4().hex
    out = tmp_path_factory.mktemp("bench") / "smoke.jsonl"
    proc = start(token, "--late", "5", "--servers", ",".join(SERVERS), "--workers-servers", "mw-gunicorn-gws,mw-uwsgi,bare",
                 "--out", str(out))
    try:
        stdout, stderr = proc.communicate(timeout=500)
    finally:
        if proc.poll() is None:  # a timeout: compare.py stops what it started on SIGTERM
            proc.terminate()
            proc.wait(60)
    assert proc.returncode == 0, stderr[-3000:]
    lines = [json.loads(line) for line in stdout.splitlines()]
    return {"lines": lines, "rows": [r for r in lines if not r.get("machine")], "token": token, "out": out}


def rows_of(smoke, scenario: str) -> list:
    return [r for r in smoke["rows"] if r.get("scenario") == scenario]


def test_smoke_run_reports_no_error(smoke):
    assert [r for r in smoke["rows"] if "error" in r] == []


def test_first_line_describes_the_machine(smoke):
    head = smoke["lines"][0]
    assert head["machine"] and head["cores"] >= 1 and "ws4redis_mw" in head["mw"]


@pytest.mark.parametrize("scenario", ["connections", "burst", "steady", "publish"])
def test_every_scenario_ran_against_every_server(smoke, scenario):
    assert {r["server"] for r in rows_of(smoke, scenario)} == set(SERVERS)


def test_connections_are_all_held(smoke):
    for r in rows_of(smoke, "connections"):
        assert (r["server"], r["opened"], r["held"]) == (r["server"], r["sockets"], r["sockets"])


def test_mw_uses_two_redis_connections_whatever_the_sockets(smoke):
    assert {r["redis_clients"] for r in rows_of(smoke, "connections") if r["server"] in MW} == {2}


@pytest.mark.parametrize("scenario", ["burst", "steady"])
def test_fanout_delivers_every_message_once(smoke, scenario):
    for r in rows_of(smoke, scenario):
        assert (r["server"], r["workers"], r["deliveries"], r["lost"], r["dups"]) == (r["server"], r["workers"], r["expected"], 0, 0)
        assert r["server_cpu_us_per_delivery"] is not None and r["p99_ms"] is not None


def test_two_workers_ran_for_the_chosen_servers(smoke):
    assert {r["server"] for r in smoke["rows"] if r.get("workers") == 2} == {"mw-gunicorn-gws", "mw-uwsgi", "bare"}


def test_client_publish_gets_every_echo(smoke):
    for r in rows_of(smoke, "publish"):
        assert (r["server"], r["sent"], r["deliveries"], r["lost"]) == (r["server"], r["sockets"] * r["messages"], r["sent"], 0)


def test_calibration_ran_the_python_generator(smoke):
    assert any(r["generator"] == "python" and r["deliveries"] == r["expected"] for r in rows_of(smoke, "calibration"))


def test_no_process_is_left_running(smoke):
    assert left_behind(smoke["token"]) == []


def test_report_renders_every_table(smoke, tmp_path):
    out = tmp_path / "benchmarks.md"
    subprocess.run([sys.executable, str(BENCH / "report.py"), str(smoke["out"]), "--out", str(out)], check=True, cwd=ROOT)
    text = out.read_text()
    for title in ("## Machine", "## Connections", "## Burst fan-out", "## Steady fan-out", "## Client publish", "## Two workers"):
        assert title in text


def test_sigterm_stops_every_process_it_started():
    tools()
    token = uuid.uuid4().hex
    proc = start(token, "--servers", "mw-uwsgi", "--scenarios", "steady", "--steady", "3x5x30")
    deadline = time.monotonic() + 60
    # Until the generators are up: the server, Redis and the publisher are by then (its steady run takes 30 s).
    while not any("loadgen" in p for p in left_behind(token)):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no load generator started within 60 s"
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    # A process it killed may still be on its way out on a loaded machine: gone within seconds, not at once.
    deadline = time.monotonic() + 10
    while left_behind(token) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left_behind(token) == []


def test_history_bench_prints_every_measurement_and_recovers_every_client():
    """bench/history.py at a tiny size: its JSON lines, every client recovered, a warm worker reads no stream."""
    require(redis_server_binary() is not None, "redis-server is not installed (apt-get install redis-server)")
    proc = subprocess.run([sys.executable, str(BENCH / "history.py"), "--clients", "20", "--subscribers", "10", "--seconds", "1",
                           "--publications", "100"], cwd=BENCH, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0]["cores"] >= 1 and [line["measurement"] for line in lines[1:]] == [
        "reconnect", "reconnect", "reconnect", "redis_cost", "redis_cost", "server_cost", "server_cost", "memory"]
    storms = {line["case"]: line for line in lines if line.get("measurement") == "reconnect"}
    assert {case: (s["recovered"], s["redis_commands"]["xrange"]) for case, s in storms.items()} == {
        "warm": (20, 0), "left": (20, 1), "restarted": (20, 1)}
    for line in lines:
        if line.get("measurement") == "server_cost":
            assert line["received_on"] == line["received_off"] == line["deliveries"]
    assert "reconnect" in proc.stderr and "memory" in proc.stderr  # the summary


def test_recovery_storm_bench_serves_every_socket_of_every_case():
    """bench/recovery_storm.py at a tiny size: one line per case, every socket got exactly what it is owed (no timing)."""
    require(redis_server_binary() is not None, "redis-server is not installed (apt-get install redis-server)")
    proc = subprocess.run([sys.executable, str(BENCH / "recovery_storm.py"), "--clients", "30", "--rounds", "1"],
                          cwd=BENCH, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()][1:]
    assert [(line["case"], line["served"]) for line in lines] == [("plain", 30), ("recover-same", 30), ("recover-spread", 30)]
    assert "x plain" in proc.stderr  # the summary
