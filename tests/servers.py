"""Real processes for the tests: redis-server and the server modes.

Every process is started on 127.0.0.1 (or a unix socket in a temporary
directory), waited for, and stopped by its own PID.  ``SERVER_MODES`` is the
one list the protocol suite runs against; each mode says how to start the
test project's ``wsgi.py`` under one server.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: Optional[subprocess.Popen] = None, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout}s")


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def redis_server_binary() -> Optional[str]:
    return shutil.which("redis-server") or (str(BIN / "redis-server") if (BIN / "redis-server").exists() else None)


class RedisServer:
    """A throwaway redis-server on a fixed free port, which can be stopped and started again."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server not found")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)


@dataclasses.dataclass
class ServerMode:
    name: str
    #: Builds the command from (port, workdir); the server must listen on 127.0.0.1:port.
    command: Callable[[int, Path], List[str]]
    #: True where the server answers the 101 before our middleware runs, so
    #: refusals arrive as close frames, not HTTP statuses.
    refuses_after_upgrade: bool = False
    #: Why the mode cannot run on this machine, or None.
    unavailable: Callable[[], Optional[str]] = lambda: None


SERVER_MODES: List[ServerMode] = [
    ServerMode(
        "pywsgi",
        lambda port, _: [PYTHON, "-m", "ws4redis_mw.serve", "tests.project.wsgi:application", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
    ),
    ServerMode(
        "gunicorn-geventwebsocket",
        lambda port, workdir: [str(BIN / "gunicorn"), "-k", "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
                               "--no-control-socket", "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                               "tests.project.wsgi:application"],
        refuses_after_upgrade=True,
    ),
    ServerMode(
        "gunicorn-pywsgi",
        lambda port, workdir: [str(BIN / "gunicorn"), "-k", "gevent_pywsgi", "--no-control-socket", "-w", "1",
                               "-b", f"127.0.0.1:{port}", "--log-level", "warning", "tests.project.wsgi:application"],
    ),
]


class Server:
    """One server mode running the test project."""

    def __init__(self, mode: ServerMode, redis_url: str, workdir: Path, env: Optional[Dict[str, str]] = None):
        self.mode = mode
        self.redis_url = redis_url
        self.workdir = workdir
        self.port = free_port()
        self.extra_env = env or {}
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = workdir / f"{mode.name}-{self.port}.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DJANGO_SETTINGS_MODULE": "tests.project.settings",
            "WS4REDIS_TEST_REDIS": self.redis_url,
            "WS4REDIS_TEST_DB": str(self.workdir / "db.sqlite3"),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.mode.command(self.port, self.workdir), cwd=ROOT, env=self.env(), stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig)
            self.proc = None
            self.log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self) -> List[int]:
        """The server's own PID and its children's (gunicorn workers)."""
        import psutil

        parent = psutil.Process(self.proc.pid)
        return [parent.pid] + [child.pid for child in parent.children(recursive=True)]
