"""The calibration server: it does as little per delivery as a server can, so the load generator is the limit.

    python bench/trivial.py --port 8000 --messages 200

Accepts websockets on any path (raw sockets, its own 101), and on SIGUSR1
writes ``--messages`` ready-made frames to every socket in one ``sendall``
each, each payload stamped with the time of the signal.  Whatever the
generator then measures is the generator's own ceiling.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import base64  # noqa: E402
import hashlib  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
clients = []


def handle(sock, _address):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            return
        buf += chunk
    key = next(line.split(b":", 1)[1].strip() for line in buf.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key:"))
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    clients.append(sock)
    while sock.recv(65536):  # until the client goes
        pass
    clients.remove(sock)


def burst(messages):
    stamp = f"{time.time() * 1000.0:.3f}"
    frames = b"".join(bytes([0x81, len(p)]) + p for p in (f"{i} {stamp} {'x' * 90}".encode() for i in range(messages)))
    for sock in list(clients):
        gevent.spawn(sock.sendall, frames)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    gevent.signal_handler(signal.SIGUSR1, burst, args.messages)
    StreamServer(socket.create_server(("127.0.0.1", args.port), backlog=1024), handle).serve_forever()
