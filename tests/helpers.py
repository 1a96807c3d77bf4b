"""Helpers shared by the test modules: raw frames and raw sockets for what a polite client never sends,
the cluster tests' publisher, sockets and figures, and the README's Quick start as a new project."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import List, Tuple

from readme import block_starting_with, section
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from servers import BIN

TIMEOUT = 5
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
#: WS4REDIS_HEARTBEAT of the test project, sent after 4 s of silence from the client.
HEARTBEAT = "--heartbeat--"


def recv(ws, timeout: float = TIMEOUT):
    """The next message ``ws`` (a websockets client) receives within ``timeout`` seconds, heartbeats skipped.

    The server's heartbeat comes after 4 s of client silence, which a slow
    machine reaches in the middle of a test.
    """
    deadline = time.monotonic() + timeout
    while True:
        received = ws.recv(timeout=max(0.0, deadline - time.monotonic()))
        if received != HEARTBEAT:
            return received


def assert_silent(ws, timeout: float = 0.5) -> None:
    """``ws`` receives nothing but heartbeats for ``timeout`` seconds."""
    try:
        received = recv(ws, timeout)
    except TimeoutError:
        return
    raise AssertionError(f"received {received!r}")


def client_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    """A masked frame as a client sends it, of any length."""
    n = len(payload)
    first = (0x80 if fin else 0) | rsv | opcode
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    if not any(mask):
        return header + mask + payload
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") if n else b""
    return header + mask + masked


def masked_frame(opcode: int, payload: bytes) -> bytes:
    return client_frame(opcode, payload, mask=b"\x01\x02\x03\x04")


def split_frames(buf: bytes) -> Tuple[List[Tuple[int, bytes]], bytes]:
    """Whole server frames at the start of ``buf`` as (opcode, payload), and the rest."""
    out = []
    while len(buf) >= 2:
        opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
        start = 2 + (2 if length == 126 else 8 if length == 127 else 0)
        if len(buf) < start:
            break
        if length >= 126:
            length = int.from_bytes(buf[2:start], "big")
        if len(buf) < start + length:
            break
        out.append((opcode, buf[start:start + length]))
        buf = buf[start + length:]
    return out, buf


def raw_handshake(server, path: str, key: str = KEY, version: str = "13") -> bytes:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    return data


def raw_websocket(server, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(1)
    assert data.startswith(b"HTTP/1.1 101"), data
    return sock


def read_frames_until_close(sock: socket.socket, timeout: float = TIMEOUT) -> List[Tuple[int, bytes]]:
    """Every frame up to and including the close frame; fails on end of stream or a cut frame."""
    buf, frames = b"", []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new, buf = split_frames(buf)
        frames += new
        if frames and frames[-1][0] == 0x8:
            return frames
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed without a close frame ({len(frames)} frames, {len(buf)} bytes of a cut frame)")
        buf += chunk
    raise AssertionError("no close frame in time")


def read_close_code(sock: socket.socket, timeout: float = TIMEOUT) -> int:
    """Read frames until a close frame; return its code."""
    return int.from_bytes(read_frames_until_close(sock, timeout)[-1][1][:2], "big")


# -- raw exchanges with a running server (tests/test_fuzz.py) ---------------------

def exchange(port: int, data: bytes, timeout: float = TIMEOUT, until_headers: bool = True) -> Tuple[bytes, bool]:
    """Send ``data`` on a new connection, then read: up to the end of the response
    headers (``until_headers``) or to the end of stream.  Returns (bytes read,
    whether the server answered or ended the connection in time); never blocks
    longer than ``timeout``.  With ``until_headers=False`` the sending side is
    shut first, so a server waiting for more sees the end of stream."""
    received = b""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if not until_headers:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server may refuse and close before reading everything
            return received, True
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except OSError:  # a reset: ended
                return received, True
            if not chunk:
                return received, True
            received += chunk
            if until_headers and b"\r\n\r\n" in received:
                return received, True
    return received, False


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response, or 0 if it has none."""
    parts = response.split(b"\r\n", 1)[0].split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") and parts[1].isdigit() else 0


def websocket_exchange(port: int, path: str, data: bytes, timeout: float = TIMEOUT, linger: float = 0.2) -> Tuple[bytes, bool]:
    """Open a websocket on ``path`` (raw), send ``data``, read until the server's
    close frame or ``linger`` seconds of silence, then shut the sending side and
    read to the end of stream.  (Shutting at once would let a proxy in front,
    uWSGI's router or nginx, drop the connection before the server's close
    frame comes back.)  Returns (bytes after the 101, whether the connection
    ended within ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, f"no answer to the handshake: {head!r}"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        received = head.split(b"\r\n\r\n", 1)[1]
        deadline = time.monotonic() + timeout
        try:
            sock.sendall(data)
        except OSError:  # closed by the server already (a protocol error early on)
            return received, True
        shut = False
        while time.monotonic() < deadline:
            if not shut and any(opcode == 0x8 for opcode, _ in split_frames(received)[0]):
                sock.shutdown(socket.SHUT_WR)
                shut = True
            sock.settimeout(max(0.01, min(deadline - time.monotonic(), timeout if shut else linger)))
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                if not shut:
                    try:
                        sock.shutdown(socket.SHUT_WR)
                    except OSError:
                        return received, True
                    shut = True
                continue
            except OSError:
                return received, True
            if not chunk:
                return received, True
            received += chunk
    return received, False


def server_stats(server) -> dict:
    """The test project's ``/stats`` of the process that serves the websockets
    (under nginx-uwsgi: the gevent uWSGI instance, asked on its own socket)."""
    import http.client
    import json

    if server.mode.name == "nginx-uwsgi":
        from servers import nginx_dir

        class UnixConnection(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.settimeout(TIMEOUT)
                self.sock.connect(str(nginx_dir(server.port, server.workdir) / "web.socket"))

        conn: http.client.HTTPConnection = UnixConnection("localhost", timeout=TIMEOUT)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/stats", headers={"Host": "127.0.0.1"})
        response = conn.getresponse()
        assert response.status == 200, response.status
        return json.loads(response.read())
    finally:
        conn.close()


def open_descriptors(server) -> int:
    """Descriptors held by the server's processes (backends included)."""
    import psutil

    return sum(psutil.Process(pid).num_fds() for pid in server.pids())
def start(mode_name: str, redis, workdir, **env):
    """One server mode of the test project on ``redis`` (a RedisServer), with WS4REDIS_TEST_* ``env``."""
    from conftest import start_server
    from servers import SERVER_MODES

    mode = next(m for m in SERVER_MODES if m.name == mode_name)
    return start_server(mode, redis.url, workdir, env)


def warm_hub(server, timeout: float = 20.0) -> None:
    """Wait until the server accepts a websocket, and so its hub is connected to Redis.

    The first handshake of a process starts its hub, which has
    WS4REDIS_REDIS_TIMEOUT (2 s) to connect; a loaded machine can take longer,
    and that handshake is then refused (503, or 1013 after the upgrade in
    the modes that upgrade first): tests about something else wait here.
    """
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    deadline = time.monotonic() + timeout
    while True:
        try:
            with connect(f"{server.ws}/ws/warm-up-{uuid.uuid4().hex[:8]}?subscribe-broadcast", open_timeout=5) as probe:
                probe.recv(timeout=0.5)  # a refusal after the upgrade closes it at once
        except TimeoutError:
            return  # open and quiet: accepted
        except (OSError, WebSocketException):
            pass
        assert time.monotonic() < deadline, "the server never accepted a websocket"
        time.sleep(0.2)


def stats(server) -> dict:
    """The test project's /stats: the hubs, greenlets, RSS and ws4redis_mw.stats() of the server process."""
    with urllib.request.urlopen(server.http + "/stats", timeout=10) as response:
        return json.loads(response.read())


# -- Redis Cluster tests: sockets on every master, a steady publisher, figures per socket --

#: Channels per master in the cluster tests.
CLUSTER_CHANNELS_PER_MASTER = 4
#: Seconds between two rounds of the cluster tests' publisher.
PUBLISH_ROUND = 0.1


def redis_cluster(folder, **options):
    """A started RedisClusterSet (``options`` as it takes them) for a module fixture to yield; stopped by the generator.

    Sharded pub/sub needs Redis 7 and ``redis-cli``: without them the test
    is skipped (failed under CI).
    """
    import shutil

    from conftest import require
    from servers import RedisClusterSet, redis_server_binary, redis_version

    require(redis_server_binary() is not None and shutil.which("redis-cli") is not None, "redis-server and redis-cli are needed")
    if redis_version() < (7,):
        import pytest

        pytest.skip(f"sharded pub/sub needs Redis 7, not {'.'.join(map(str, redis_version()))}")
    cluster = RedisClusterSet(folder, **options)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def channels_by_master(cluster, tag, per_master=CLUSTER_CHANNELS_PER_MASTER):
    """``per_master`` channel names per master port of a RedisClusterSet, found by the slot of their broadcast channel."""
    client = cluster.client()
    wanted = {port: [] for port in cluster.master_ports()}
    i = 0
    while any(len(names) < per_master for names in wanted.values()):
        name = f"f{i}-{tag}"
        names = wanted[client.get_node_from_key(f"broadcast:{name}").port]
        if len(names) < per_master:
            names.append(name)
        i += 1
    client.close()
    return wanted


class Publisher(threading.Thread):
    """Publishes ``p<round>`` to every channel through POST /publish (RedisPublisher), a round every ``every`` seconds."""

    def __init__(self, server, names, every=PUBLISH_ROUND):
        from conftest import Http

        super().__init__(daemon=True)
        self.http = Http(server.http)
        self.every = every
        self.names = names
        self.stopped = threading.Event()
        self.sent = []  # (name, message, sent at, accepted)
        self.refusals = {}  # reply -> how many

    def run(self):
        seq = 0
        while not self.stopped.is_set():
            for name in self.names:
                started = time.monotonic()
                try:
                    status, _, body = self.http.post_json("/publish", {"facility": name, "message": f"p{seq}", "broadcast": True})
                except OSError as exc:
                    status, body = None, str(exc).encode()
                if status != 200:
                    self.refusals[body] = self.refusals.get(body, 0) + 1
                self.sent.append((name, f"p{seq}", started, status == 200))
            seq += 1
            self.stopped.wait(self.every)


def figures(publisher, received, names, since, event_at):
    """Per socket: the longest silence after ``since`` (s), the latest delivery (s), the first delivery of a
    publication sent after ``event_at`` (s after it); publications lost, duplicated."""
    sent_at = {(name, message): at for name, message, at, ok in publisher.sent if ok}
    silence, latest, back, lost, duplicated = {}, {}, {}, {}, {}
    for name in names:
        back[name] = min((at for at, message in received[name] if sent_at.get((name, message), 0) >= event_at),
                         default=float("inf")) - event_at
        times = [since, *(at for at, _ in received[name] if at >= since)]
        silence[name] = max((b - a for a, b in zip(times, times[1:], strict=False)), default=float("inf"))
        latest[name] = max((at - sent_at[(name, message)] for at, message in received[name] if (name, message) in sent_at),
                           default=float("inf"))
        messages = [message for _, message in received[name]]
        lost[name] = [message for (n, message) in sent_at if n == name and message not in messages]
        duplicated[name] = len(messages) - len(set(messages))
    return silence, latest, back, lost, duplicated


class ClusterTraffic:
    """The cluster tests' load: a socket per channel (subscribe, publish, echo) with its reader, and a :class:`Publisher`.

    ``await start()``; the fault; ``await stop_publishing()``; ``await
    drain()`` (every accepted publication, then each client's own); then
    ``check(since, event_at, moved)`` prints the figures per group and
    asserts that no socket closed and nothing was lost or delivered twice;
    ``await close()``.
    """

    def __init__(self, server, names):
        self.server, self.names = server, list(names)
        self.received = {name: [] for name in self.names}  # name -> [(received at, message)]
        self.closed = []
        self.publisher = Publisher(server, self.names)
        self.sockets = {}
        self.readers = None

    async def start(self):
        for name in self.names:
            url = f"{self.server.ws}/ws/{name}?subscribe-broadcast&publish-broadcast&echo"
            self.sockets[name] = await async_connect(url, open_timeout=10)
        self.readers = asyncio.gather(*(self._read(name, ws) for name, ws in self.sockets.items()))
        self.publisher.start()
        await wait_until(lambda: all(self.received[name] for name in self.names), 10, "first round delivered")

    async def _read(self, name, ws):
        try:
            async for message in ws:
                self.received[name].append((time.monotonic(), message))
        except ConnectionClosed:
            pass
        self.closed.append(name)

    def got(self, name, message):
        return any(m == message for _, m in self.received[name])

    async def wait_flowing(self, names, after, what, timeout=20):
        """Until every socket of ``names`` received something after ``after`` (``time.monotonic()``)."""
        await wait_until(lambda: all(any(at > after for at, _ in self.received[name]) for name in names), timeout, what)

    async def stop_publishing(self):
        self.publisher.stopped.set()
        await asyncio.to_thread(self.publisher.join, 10)
        for reply, count in self.publisher.refusals.items():
            print(f"  refused {count} times: {reply[:300]!r}")

    async def drain(self):
        """Wait for every accepted publication (those missing show in :meth:`check`), then for each client's own."""
        accepted = {(name, message) for name, message, _, ok in self.publisher.sent if ok}
        try:
            await wait_until(lambda: accepted <= {(n, m) for n in self.names for _, m in self.received[n]} or bool(self.closed),
                             10, "every accepted publication delivered")
        except AssertionError:
            pass  # check() says which were lost
        # A client's own publication (the hub's command pipeline, routed by the current map) reaches it.
        for name, ws in self.sockets.items():
            await ws.send(f"client {name}")
        await wait_until(lambda: all(self.got(name, f"client {name}") for name in self.names) or self.closed, 10,
                         "the clients' publications")

    def summary(self):
        sent = self.publisher.sent
        return f"{sum(ok for *_, ok in sent)} publications accepted, {sum(not ok for *_, ok in sent)} refused"

    def check(self, since, event_at, moved):
        """Print and return (silence, latest, back) per socket (:func:`figures`); no socket closed, none lost or twice."""
        silence, latest, back, lost, duplicated = figures(self.publisher, self.received, self.names, since, event_at)
        for label, group in (("moved", set(moved)), ("other", set(self.names) - set(moved))):
            print(f"  {label}: longest silence {max(silence[n] for n in group):.2f} s, "
                  f"latest delivery {max(latest[n] for n in group):.2f} s, "
                  f"lost {sum(len(lost[n]) for n in group)}, duplicated {sum(duplicated[n] for n in group)}")
        print(f"  moved: first delivery of a publication sent after the change {max(back[n] for n in moved):.2f} s after it")
        assert not self.closed, f"sockets closed: {self.closed}"
        assert not any(lost.values()), {name: got for name, got in lost.items() if got}
        assert not any(duplicated.values()), duplicated
        return silence, latest, back

    async def close(self):
        for ws in self.sockets.values():
            await ws.close()
        await self.readers


async def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)


def assert_new_socket_works(server, name):
    """A new socket is accepted and gets what is published after it opened (other publications of the run may come first)."""
    with connect(f"{server.ws}/ws/{name}?subscribe-broadcast", open_timeout=10) as ws:
        from conftest import Http

        Http(server.http).publish(name, f"after {name}", broadcast=True)
        deadline = time.monotonic() + 5
        while recv(ws, max(0.0, deadline - time.monotonic())) != f"after {name}":
            pass


# -- the README's Quick start, applied to a new project ------------------------------

QUICK_START = section("Quick start")
#: The Quick start's publisher snippet, run in ``manage.py shell``.
PUBLISH = block_starting_with(QUICK_START, "# anywhere in Django code")


def user_env() -> dict:
    """A shell with the virtualenv activated, and none of the test suite's own settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH") and not k.startswith("WS4REDIS_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(BIN.parent)
    return env


def quick_start_project(home: Path, redis_url: str) -> Path:
    """``django-admin startproject mysite`` in ``home`` with the Quick start applied (on ``redis_url``), migrated."""
    subprocess.run([str(BIN / "django-admin"), "startproject", "mysite"], cwd=home, env=user_env(), check=True)
    root = home / "mysite"
    settings = block_starting_with(QUICK_START, "# mysite/settings.py").replace("redis://localhost:6379/0", redis_url)
    assert redis_url in settings
    with open(root / "mysite" / "settings.py", "a") as file:
        file.write("\n" + settings)
    (root / "mysite" / "wsgi.py").write_text(block_starting_with(QUICK_START, "# mysite/wsgi.py"))
    with open(root / "mysite" / "urls.py", "a") as file:
        file.write("\n" + block_starting_with(QUICK_START, "# mysite/urls.py"))
    (root / "templates").mkdir()
    (root / "templates" / "index.html").write_text(block_starting_with(QUICK_START, "<!-- templates/index.html"))
    subprocess.run(["./manage.py", "migrate", "-v0"], cwd=root, env=user_env(), check=True)
    return root
