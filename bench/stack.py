"""What every benchmark here shares: its command line and its own redis-server and server.

``main(run, default_sockets, default_messages)`` parses ``--mode``,
``--sockets`` and ``--messages``, starts a redis-server and the chosen
server mode of the test project on 127.0.0.1 (no heartbeat, nothing kept),
awaits ``run(server, redis, sockets, messages)``, stops both and prints the
result dict on one line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers import SERVER_MODES, RedisServer, Server  # noqa: E402

__all__ = ["main", "RedisServer", "Server"]


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
