"""One load-generator process: N websocket clients on raw gevent sockets, driven over stdin/stdout.

    python bench/loadgen.py '{"host": "127.0.0.1", "port": 8000, "path": "/ws/bench?subscribe-broadcast", "count": 500}'

bench/loadgen.js speaks the same protocol; bench/compare.py starts several of
either and sums what they report.  The design rule: do as little per message
as a client can, so that the server under test, not this process, is what the
CPU figures measure.  Frames are parsed from one receive buffer per socket;
only the first two fields of a payload are looked at.

A payload is ``"<seq> <send time, ms since the epoch> <padding>"``.  Per socket
the client counts messages, counts as duplicates those whose seq is not above
the last one seen, and adds ``now - send time`` to a latency histogram of
0.1 ms buckets.  ``path`` may hold ``{i}`` (the socket's global index).

On stdin, one JSON object a line; each gets one JSON line back on stdout:
  (start)                    -> {"event": "ready", "opened", "failed", "errors"}
  {"cmd": "count"}           -> {"received", "open"}
  {"cmd": "reset"}           -> {"ok": true}
  {"cmd": "report"}          -> {"received", "dups", "open", "hist", "last_ms"}
  {"cmd": "publish", "messages": M, "timeout": s}
        every socket sends M messages, each one after the echo of the previous
        came back (a closed loop), and the round trips fill the histogram
                             -> {"sent", "received", "dups", "hist", "open", "last_ms"}
  {"cmd": "close"}           -> closes every socket, {"ok": true}, exits
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import base64  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402
from gevent.pool import Pool  # noqa: E402

PAD = "x" * 100


class Stats:
    def __init__(self) -> None:
        self.received = 0
        self.dups = 0
        self.hist: dict = {}
        self.last_ms = 0.0


def masked(opcode: int, payload: bytes) -> bytes:
    # Clients must mask; a random key per frame, XORed four bytes at a time.
    key = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    k = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    body = (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big") if n else b""
    return head + key + body


class Client:
    def __init__(self, gen: "Generator", index: int):
        self.gen = gen
        self.index = index
        self.sock: socket.socket | None = None
        self.open = False
        self.last_seq = -1
        self.echo = Event()

    def connect(self) -> None:
        g = self.gen
        path = g.path.replace("{i}", str(self.index))
        sock = socket.create_connection((g.host, g.port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {g.host}:{g.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{g.host}:{g.port}\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        sock.settimeout(None)
        self.sock = sock
        self.open = True
        gevent.spawn(self.read, rest)

    def read(self, buf: bytes) -> None:
        sock, gen = self.sock, self.gen
        try:
            while True:
                while len(buf) >= 2:
                    b0, b1 = buf[0], buf[1]
                    n, pos = b1 & 0x7F, 2
                    if n == 126:
                        if len(buf) < 4:
                            break
                        n, pos = struct.unpack_from("!H", buf, 2)[0], 4
                    elif n == 127:
                        if len(buf) < 10:
                            break
                        n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
                    if len(buf) < pos + n:
                        break
                    payload, buf = buf[pos:pos + n], buf[pos + n:]
                    opcode = b0 & 0x0F
                    if opcode == 1 or opcode == 2:
                        self.message(payload, gen.stats)
                    elif opcode == 8:
                        return
                    elif opcode == 9:
                        sock.sendall(masked(0xA, payload))
                chunk = sock.recv(262144)
                if not chunk:
                    return
                buf = buf + chunk if buf else chunk
        except OSError:
            return
        finally:
            self.open = False

    def message(self, payload: bytes, stats: Stats) -> None:
        fields = payload.split(b" ", 2)
        try:
            seq, sent = int(fields[0]), float(fields[1])
        except (ValueError, IndexError):
            return  # a heartbeat, or anything not ours
        now = time.time() * 1000.0
        stats.received += 1
        if seq <= self.last_seq:
            stats.dups += 1
        self.last_seq = seq
        bucket = int((now - sent) * 10)
        stats.hist[bucket] = stats.hist.get(bucket, 0) + 1
        stats.last_ms = now
        self.echo.set()

    def publish(self, messages: int, deadline: float) -> int:
        sent = 0
        for seq in range(messages):
            if not self.open or time.monotonic() > deadline:
                break
            self.echo.clear()
            self.sock.sendall(masked(1, f"{seq} {time.time() * 1000.0:.3f} {PAD}".encode()))
            sent += 1
            self.echo.wait(max(0.0, deadline - time.monotonic()))
        return sent


class Generator:
    def __init__(self, spec: dict):
        self.host, self.port, self.path = spec["host"], int(spec["port"]), spec["path"]
        self.clients = [Client(self, spec.get("offset", 0) + i) for i in range(spec["count"])]
        self.concurrency = spec.get("concurrency", 50)
        self.stats = Stats()

    def connect_all(self) -> dict:
        failed, errors = 0, []

        def one(client: Client) -> None:
            nonlocal failed
            try:
                client.connect()
            except Exception as exc:  # any failure is a count, not a crash
                failed += 1
                if len(errors) < 3:
                    errors.append(repr(exc))

        Pool(self.concurrency).map(one, self.clients)
        return {"event": "ready", "opened": len(self.clients) - failed, "failed": failed, "errors": errors}

    def open_count(self) -> int:
        return sum(1 for c in self.clients if c.open)

    def report(self) -> dict:
        s = self.stats
        return {"received": s.received, "dups": s.dups, "open": self.open_count(),
                "hist": {str(k): v for k, v in s.hist.items()}, "last_ms": s.last_ms}

    def handle(self, cmd: dict) -> dict | None:
        what = cmd["cmd"]
        if what == "count":
            return {"received": self.stats.received, "open": self.open_count()}
        if what == "reset":
            self.stats = Stats()
            for c in self.clients:
                c.last_seq = -1
            return {"ok": True}
        if what == "report":
            return self.report()
        if what == "publish":
            deadline = time.monotonic() + cmd.get("timeout", 60)
            jobs = [gevent.spawn(c.publish, cmd["messages"], deadline) for c in self.clients if c.open]
            gevent.joinall(jobs)
            return {"sent": sum(j.value or 0 for j in jobs), **self.report()}
        if what == "close":
            for c in self.clients:
                if c.sock is not None:
                    try:
                        c.sock.sendall(masked(8, struct.pack("!H", 1000)))
                        c.sock.close()
                    except OSError:
                        pass
            return {"ok": True}
        return {"error": f"unknown command {what}"}


def main() -> None:
    gen = Generator(json.loads(sys.argv[1]))
    out = sys.stdout

    def say(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    say(gen.connect_all())
    stdin = gevent.fileobject.FileObject(sys.stdin.fileno(), "r")
    for line in stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        say(gen.handle(cmd))
        if cmd["cmd"] == "close":
            break


if __name__ == "__main__":
    import gevent.fileobject  # noqa: F401

    main()
