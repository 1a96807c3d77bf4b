"""The I/O of one websocket, in-process: ``WebSocket.open`` over a socketpair, a real hub on a real redis-server.

These run in seconds; the same behaviour through every real server is in
test_protocol.py and test_hub.py.
"""

from __future__ import annotations

import dataclasses
import socket
import struct
import uuid

import gevent
import gevent.socket
import pytest

from ws4redis_mw.bridge import Bridge
from ws4redis_mw.frames import CloseCode, Opcode
from ws4redis_mw.hub import Hub
from ws4redis_mw.settings import Settings
from ws4redis_mw.transports import SocketTransport
from ws4redis_mw.websocket import WebSocket

from helpers import client_frame, read_frames_until_close, split_frames


@pytest.fixture
def settings(redis_server):
    return Settings(connection=redis_server.url, heartbeat=None, ping_interval=None, expire=0, close_timeout=0.5)


@pytest.fixture
def hub(settings):
    hub = Hub(settings)
    hub.start()
    assert hub.wait_connected(5)
    yield hub
    hub.stop()


def channel() -> str:
    return "broadcast:" + uuid.uuid4().hex[:12]


class Client:
    """The client end of a socketpair, with the server's WebSocket running in a greenlet."""

    def __init__(self, hub: Hub, settings: Settings, channels=(), publishers=(), small_buffers=False):
        server_sock, self.sock = gevent.socket.socketpair()
        if small_buffers:
            for sock in (server_sock, self.sock):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.ws = WebSocket(Bridge(settings, subscriptions=channels, publishers=publishers), hub, "test")
        kept = hub.attach(self.ws, list(channels))
        self.ws.open(SocketTransport(server_sock), kept)
        self.greenlet = gevent.spawn(self.ws.wait_closed)
        self.buf = b""

    def frames(self, count: int, timeout: float = 5):
        out = []
        with gevent.Timeout(timeout):
            while len(out) < count:
                new, self.buf = split_frames(self.buf)
                out += new
                if len(out) >= count:
                    break
                data = self.sock.recv(65536)
                assert data, "end of stream"
                self.buf += data
        return out

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def ended(self, timeout: float = 5) -> bool:
        self.greenlet.join(timeout)
        return self.greenlet.dead


def test_message_published_to_redis_reaches_the_socket(hub, settings, redis_server):
    ch = channel()
    client = Client(hub, settings, [ch])
    redis_server.client().publish(ch, "hello")
    assert client.frames(1) == [(Opcode.TEXT, b"hello")]


def test_client_message_is_published_to_other_sockets(hub, settings):
    ch = channel()
    listener = Client(hub, settings, [ch])
    Client(hub, settings, publishers=[ch]).send(client_frame(Opcode.TEXT, b"from a client"))
    assert listener.frames(1) == [(Opcode.TEXT, b"from a client")]


def test_burst_larger_than_the_backlog_bound_reaches_a_reading_client(hub, settings, redis_server):
    ch = channel()
    small = dataclasses.replace(settings, max_backlog=10_000)
    client = Client(hub, small, [ch])
    pipe = redis_server.client().pipeline(transaction=False)
    for i in range(1100):
        pipe.publish(ch, b"%04d" % i + b"x" * 96)
    pipe.execute()
    received = client.frames(1100, timeout=20)
    assert [payload[:4] for _, payload in received] == [b"%04d" % i for i in range(1100)]


def test_client_that_never_reads_is_closed_with_1013_after_whole_frames(hub, settings, redis_server):
    ch = channel()
    client = Client(hub, dataclasses.replace(settings, max_backlog=50_000), [ch], small_buffers=True)
    pipe = redis_server.client().pipeline(transaction=False)
    for _ in range(500):
        pipe.publish(ch, b"y" * 1000)
    pipe.execute()
    gevent.sleep(1)  # the server queues, writes what the kernel takes, then gives up
    frames = read_frames_until_close(client.sock, timeout=10)  # fails on a frame cut in half
    assert all(frame == (Opcode.TEXT, b"y" * 1000) for frame in frames[:-1])
    assert struct.unpack("!H", frames[-1][1][:2])[0] == CloseCode.TRY_AGAIN_LATER
    assert client.ended() and hub.listener_count == 0


def test_client_close_is_echoed_then_the_connection_ends(hub, settings):
    client = Client(hub, settings, [channel()])
    client.send(client_frame(Opcode.CLOSE, struct.pack("!H", 4000)))
    assert client.frames(1) == [(Opcode.CLOSE, struct.pack("!H", 4000))]
    assert client.ended() and client.sock.recv(10) == b""
    assert hub.listener_count == 0


def test_server_close_drops_the_backlog_and_waits_for_the_answer(hub, settings):
    client = Client(hub, settings, [channel()])
    hub.close_all(CloseCode.GOING_AWAY, "bye")
    (frame,) = client.frames(1)
    assert frame == (Opcode.CLOSE, struct.pack("!H", 1001) + b"bye")
    assert not client.ended(0.1)  # still waiting for the client's close frame
    client.send(client_frame(Opcode.CLOSE, struct.pack("!H", 1001)))
    assert client.ended()


def test_unanswered_close_ends_the_connection_after_the_close_timeout(hub, settings):
    client = Client(hub, settings, [channel()])
    hub.close_all()
    client.frames(1)
    assert client.ended(timeout=0.5 + 2 * 1.0 + 1)


def test_peer_that_never_answers_is_pinged_then_closed_with_1011(hub, settings):
    client = Client(hub, dataclasses.replace(settings, ping_interval=1.0, ping_timeout=1.0), [channel()])
    ping, close = client.frames(2, timeout=6)
    assert ping[0] == Opcode.PING
    assert close[0] == Opcode.CLOSE and struct.unpack("!H", close[1][:2])[0] == CloseCode.INTERNAL_ERROR
    assert client.ended()


def test_oversized_message_gets_its_1009_while_the_client_is_still_sending(hub, settings):
    client = Client(hub, settings, publishers=[channel()])
    big = client_frame(Opcode.TEXT, b"z" * (2 * 1024 * 1024), mask=b"\0\0\0\0")
    sender = gevent.spawn(client.send, big)
    (frame,) = client.frames(1)
    assert frame[0] == Opcode.CLOSE and struct.unpack("!H", frame[1][:2])[0] == CloseCode.MESSAGE_TOO_BIG
    sender.join(5)
    assert sender.successful()  # the server kept reading: the whole message went out
    assert client.ended()


def test_end_of_stream_detaches_the_socket(hub, settings):
    client = Client(hub, settings, [channel()])
    client.sock.close()
    assert client.ended() and hub.listener_count == 0


def test_client_that_pings_and_never_reads_is_closed_with_1013(hub, settings):
    client = Client(hub, dataclasses.replace(settings, max_backlog=20_000, close_timeout=10), [channel()], small_buffers=True)
    pings = client_frame(Opcode.PING, b"x" * 100) * 100
    sender = gevent.spawn(lambda: [client.send(pings) for _ in range(50)])
    sender.join(10)
    assert sender.successful()
    frames = read_frames_until_close(client.sock, timeout=10)
    assert {opcode for opcode, _ in frames[:-1]} == {Opcode.PONG}
    assert struct.unpack("!H", frames[-1][1][:2])[0] == CloseCode.TRY_AGAIN_LATER


def tcp_pair():
    """A connected (server, client) pair of gevent TCP sockets on loopback: unlike a socketpair, it can be reset."""
    listening = gevent.socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(1)
    client_sock = gevent.socket.create_connection(listening.getsockname())
    server_sock, _ = listening.accept()
    listening.close()
    return server_sock, client_sock


def test_connection_reset_by_the_peer_detaches_the_socket(hub, settings):
    """A TCP reset (a browser killed, a NAT dropping state) ends the socket like an end of stream."""
    server_sock, client_sock = tcp_pair()
    ws = WebSocket(Bridge(settings, subscriptions=[channel()]), hub, "reset")
    ws.open(SocketTransport(server_sock), hub.attach(ws, list(ws.bridge.subscriptions)))
    client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client_sock.sendall(b"\x81")  # half a frame header, then the reset
    client_sock.close()
    assert ws.wait_closed(5) and hub.listener_count == 0


class FailingBridge(Bridge):
    """A bridge with a bug: reading a frame raises."""

    def receive_data(self, *args, **kwargs):
        raise RuntimeError("a bug in the bridge")


def test_internal_error_while_reading_closes_with_1011_and_is_logged(hub, settings, caplog):
    server_sock, client_sock = gevent.socket.socketpair()
    ws = WebSocket(FailingBridge(settings, subscriptions=[channel()]), hub, "buggy")
    ws.open(SocketTransport(server_sock), hub.attach(ws, list(ws.bridge.subscriptions)))
    client_sock.sendall(client_frame(Opcode.TEXT, b"hello"))
    frames = read_frames_until_close(client_sock, timeout=5)
    assert struct.unpack("!H", frames[-1][1][:2])[0] == CloseCode.INTERNAL_ERROR
    assert "internal error" in caplog.text and "a bug in the bridge" in caplog.text
    client_sock.close()
    assert ws.wait_closed(5) and hub.listener_count == 0


def test_peer_that_resets_while_its_backlog_is_written_is_detached(hub, settings, redis_server):
    """A reset while the writer greenlet has a backlog (seen by the reader or the writer, whichever comes first):
    the socket ends, the writer with it, and nothing is left queued."""
    server_sock, client_sock = tcp_pair()
    for sock in (server_sock, client_sock):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ch = channel()
    ws = WebSocket(Bridge(dataclasses.replace(settings, max_backlog=10_000_000), subscriptions=[ch]), hub, "reset-mid-write")
    ws.open(SocketTransport(server_sock), hub.attach(ws, [ch]))
    pipe = redis_server.client().pipeline(transaction=False)
    for _ in range(200):
        pipe.publish(ch, b"x" * 1000)
    pipe.execute()
    with gevent.Timeout(5):
        while not ws._writer.running:  # the kernel refused bytes: a backlog is being written
            gevent.sleep(0.01)
    client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client_sock.close()
    assert ws.wait_closed(5) and hub.listener_count == 0
    assert ws._unsent == 0 and not ws._pending
