"""What every benchmark here shares: its command line and its own redis-server and server.

``main(run, default_sockets, default_messages)`` parses ``--mode``,
``--sockets`` and ``--messages``, starts a redis-server and the chosen
server mode of the test project on 127.0.0.1 (no heartbeat, nothing kept),
awaits ``run(server, redis, sockets, messages)``, stops both and prints the
result dict on one line.  ``machine_line()`` is the first JSON line of the
benchmarks that write JSON lines, and ``on_own_redis(run)`` awaits
``run(workdir, redis)`` with a redis-server of its own, stopped after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import SERVER_MODES, RedisServer, Server  # noqa: E402

__all__ = ["main", "machine_line", "on_own_redis", "RedisServer", "Server"]

T = TypeVar("T")


def machine_line() -> dict:
    """Where and when a benchmark ran, and how it was called."""
    return {"machine": platform.node(), "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "argv": sys.argv[1:]}


def on_own_redis(run: Callable[[Path, Any], Awaitable[T]]) -> T:
    """``run(workdir, redis)`` awaited with a redis-server of its own in a temporary folder, stopped after."""
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp))
        redis.start()
        try:
            return asyncio.run(run(Path(tmp), redis))
        finally:
            redis.stop()


def main(run: Callable[..., Awaitable[dict]], description: str, default_sockets: int, default_messages: int) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--mode", default="pywsgi", choices=[m.name for m in SERVER_MODES])
    parser.add_argument("--sockets", type=int, default=default_sockets)
    parser.add_argument("--messages", type=int, default=default_messages)
    args = parser.parse_args()
    mode = next(m for m in SERVER_MODES if m.name == args.mode)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir)
        redis.start()
        server = Server(mode, redis.url, workdir, {"WS4REDIS_TEST_HEARTBEAT": "", "WS4REDIS_TEST_EXPIRE": "0"})
        try:
            server.start()
            result = asyncio.run(run(server, redis, args.sockets, args.messages))
        finally:
            server.stop()
            redis.stop()
    print(f"{args.mode}: " + ", ".join(f"{k}={v}" for k, v in result.items()))
