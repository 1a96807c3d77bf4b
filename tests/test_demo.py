"""``make demo``: serves the example on PORT, stops everything it started on every stop signal, refuses a taken port.

``make`` is run as a user's shell runs a job, in a process group of its own,
on this test virtualenv (``VENV=``, with ``-o`` so that make does not
reinstall it).  The processes it started (demo.py, redis-server, runserver
and its reloader child) are looked up while it runs; after the signal each
must be gone and the port free.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

from conftest import require
from servers import ROOT, free_port, redis_server_binary, wait_for_port

VENV = Path(sys.executable).parent.parent


def make_demo(port: int, log) -> subprocess.Popen:
    require(shutil.which("make") is not None, "make is not installed")
    require(redis_server_binary() is not None, "redis-server is not installed (apt-get install redis-server)")
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    return subprocess.Popen(["make", "-s", "-o", f"{VENV}/.demo", "demo", f"VENV={VENV}", f"PORT={port}"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


# How each signal arrives in real life: an IDE's stop button or `kill` sends
# SIGTERM to make alone (GNU make passes it on to its children); a closed
# terminal sends SIGHUP, and Ctrl-C SIGINT, to the whole job.  (SIGHUP or
# SIGINT sent to make alone makes make wait for its children, which it
# expects to have had the signal too.)
@pytest.mark.parametrize("how", ["SIGTERM to make", "SIGHUP to the job (terminal closed)", "SIGINT to the job (Ctrl-C)"])
def test_demo_serves_on_port_and_stops_everything(how, tmp_path):
    port = free_port()
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        make = make_demo(port, log)
        started = []
        try:
            wait_for_port(port, make, timeout=60)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                assert response.status == 200
            started = psutil.Process(make.pid).children(recursive=True)
            names = sorted(p.name() for p in started)
            assert any("redis-server" in n for n in names) and sum("python" in n for n in names) >= 3, names
            if how.startswith("SIGTERM"):
                make.send_signal(signal.SIGTERM)
            elif how.startswith("SIGHUP"):
                os.killpg(make.pid, signal.SIGHUP)
            else:
                os.killpg(make.pid, signal.SIGINT)
            make.wait(30)
            # make ends by the signal it was stopped with, as the README says (a shell shows 128 + its number).
            sent = {"SIGTERM": signal.SIGTERM, "SIGHUP": signal.SIGHUP, "SIGINT": signal.SIGINT}[how.split()[0]]
            assert make.returncode == -sent, make.returncode
            alive = psutil.wait_procs(started, timeout=15)[1]
            assert not alive, [p.cmdline() for p in alive]
            assert port_is_free(port)
        finally:
            # Only after a failure: what the demo left behind, by the PIDs looked up above.
            for proc in started:
                try:
                    proc.kill()
                except psutil.NoSuchProcess:
                    pass
            if make.poll() is None:
                make.kill()
                make.wait(5)


def test_demo_on_a_taken_port_says_so_and_fails(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with open(tmp_path / "demo.log", "wb") as log:
            make = make_demo(port, log)
            assert make.wait(60) == 2  # make's status for a failed recipe; demo.py itself exits with 1
    output = (tmp_path / "demo.log").read_text()
    assert f"127.0.0.1:{port} is already in use" in output, output
