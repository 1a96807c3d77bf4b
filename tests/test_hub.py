"""The per-process Redis hub under load, abuse and a Redis restart.

Each test here gets its own redis-server and server process, so that Redis'
client and channel counts belong to that server alone.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import psutil
import pytest
import websockets

from conftest import start_server
from helpers import KEY, masked_frame, raw_websocket, read_close_code, read_frames_until_close, start, stats, warm_hub
from servers import SERVER_MODES, RedisServer

SOCKETS = 1000
MODES = {mode.name: mode for mode in SERVER_MODES}


def redis_clients(redis) -> int:
    """Clients of redis-server other than the one asking."""
    return len(redis.client().client_list()) - 1


def worker_rss(server) -> int:
    return psutil.Process(server.pids()[-1]).memory_info().rss


async def open_many(url: str, count: int):
    sockets = []
    for start_at in range(0, count, 100):
        size = min(100, count - start_at)
        batch = await asyncio.gather(*(websockets.connect(url, open_timeout=20, ping_interval=None) for _ in range(size)))
        sockets.extend(batch)
    return sockets


def test_thousand_sockets_share_at_most_three_redis_connections(own_redis, django_setup, workdir, capsys):
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="")
    try:
        baseline = worker_rss(server)

        async def scenario():
            sockets = await open_many(f"{server.ws}/ws/crowd?subscribe-broadcast&publish-broadcast", SOCKETS)
            clients = redis_clients(own_redis)
            rss = worker_rss(server)
            own_redis.client().publish("broadcast:crowd", "to all")
            received = await asyncio.gather(*(ws.recv() for ws in sockets))
            await asyncio.gather(*(ws.close() for ws in sockets))
            return clients, rss, received

        clients, rss, received = asyncio.run(scenario())
        per_socket = (rss - baseline) / SOCKETS
        with capsys.disabled():
            print(f"\n{SOCKETS} sockets: {clients} Redis clients, RSS {baseline >> 10} -> {rss >> 10} KiB, "
                  f"{per_socket / 1024:.1f} KiB per socket")
        assert clients <= 3
        assert received == ["to all"] * SOCKETS
    finally:
        server.stop()


@pytest.mark.parametrize("mode_name", ["pywsgi", "gunicorn-geventwebsocket"])
def test_abused_sockets_leave_no_greenlet_subscription_or_connection_behind(mode_name, own_redis, django_setup, workdir):
    server = start(mode_name, own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="")
    try:
        before = stats(server)
        for round_ in range(20):
            abuse_once(server, round_)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            after = stats(server)
            if after["greenlets"] <= before["greenlets"] and own_redis.client().pubsub_channels() == [b"control"]:
                break
            time.sleep(0.2)
        assert after["hubs"][0]["listeners"] == 0 and after["hubs"][0]["channels"] == 0, after
        assert own_redis.client().pubsub_channels() == [b"control"]  # the disconnect orders' channel, for the hub's life
        assert after["greenlets"] <= before["greenlets"], (before, after)
        assert redis_clients(own_redis) <= 3
        assert server.proc.poll() is None
    finally:
        server.stop()


def abuse_once(server, round_: int) -> None:
    path = f"/ws/abuse{round_}?subscribe-broadcast&publish-broadcast"
    # A text frame that is not UTF-8, an unmasked frame, an announced 1 GiB frame.
    for bad in (masked_frame(0x1, b"\xff"), bytes([0x81, 0x01]) + b"x", bytes([0x82, 0xFF]) + (1 << 30).to_bytes(8, "big") + b"mask"):
        sock = raw_websocket(server, path)
        sock.sendall(bad)
        assert read_close_code(sock) in (1002, 1007, 1009)
        sock.close()
    # Vanishing mid-frame, and vanishing without a close frame.
    sock = raw_websocket(server, path)
    sock.sendall(masked_frame(0x1, b"hello")[:4])
    sock.close()
    sock = raw_websocket(server, path)
    sock.close()
    # A bad facility and a half-written handshake.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(f"GET /ws/a:b?subscribe-broadcast HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    sock.recv(4096)
    sock.close()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(b"GET /ws/half HTTP/1.1\r\nUpgrade: websocket\r\n")
    sock.close()


@pytest.mark.parametrize("mode_name", list(MODES))
def test_sockets_survive_a_redis_restart_and_receive_afterwards(mode_name, own_redis, django_setup, workdir):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    server = start(mode_name, own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="")
    try:
        warm_hub(server)
        ws = connect(f"{server.ws}/ws/restart?subscribe-broadcast", open_timeout=5)
        publisher = connect(f"{server.ws}/ws/restart?publish-broadcast", open_timeout=5)
        own_redis.stop()
        # While Redis is down: the open socket stays open, a new one is refused clearly,
        # and a client whose message cannot be published is told so with 1013.
        with pytest.raises(TimeoutError):
            ws.recv(timeout=1)
        refused_promptly(server, MODES[mode_name].refuses_after_upgrade)
        publisher.send("lost?")
        with pytest.raises(ConnectionClosed) as info:
            publisher.recv(timeout=5)
        assert info.value.rcvd.code == 1013
        own_redis.start()
        deadline = time.monotonic() + 15
        got = None
        while got is None and time.monotonic() < deadline:
            own_redis.client().publish("broadcast:restart", "after restart")
            try:
                got = ws.recv(timeout=0.5)
            except TimeoutError:
                pass
        assert got == "after restart"
        ws.close()
    finally:
        server.stop()


def refused_promptly(server, after_upgrade: bool) -> None:
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    started = time.monotonic()
    if after_upgrade:
        ws = connect(f"{server.ws}/ws/down?subscribe-broadcast", open_timeout=10)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd.code == 1013
    else:
        with pytest.raises(InvalidStatus) as info:
            connect(f"{server.ws}/ws/down?subscribe-broadcast", open_timeout=10)
        assert info.value.response.status_code == 503
    assert time.monotonic() - started < 2  # at once: the hub knows Redis is down


def test_open_sockets_hold_no_database_connection(own_redis, django_setup, workdir):
    """Loading the session at the handshake must not leave a DB connection per socket."""
    from websockets.sync.client import connect

    from conftest import Http

    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="")
    try:
        user = Http(server.http)
        user.login("db" + str(time.time_ns())[-8:])
        db_files = lambda: [f for f in psutil.Process(server.proc.pid).open_files() if f.path.endswith("db.sqlite3")]  # noqa: E731
        before = len(db_files())
        cookie = user.cookie_header()
        sockets = [
            connect(f"{server.ws}/ws/db?subscribe-user&subscribe-session", additional_headers={"Cookie": cookie}, open_timeout=5)
            for _ in range(20)
        ]
        assert len(db_files()) <= before + 1
        for ws in sockets:
            ws.close()
    finally:
        server.stop()


def _echo_and_publish_through(mode_name: str, connection: str, workdir) -> None:
    """A client's echo and a view's publication both travel over WS4REDIS_CONNECTION ``connection``."""
    from websockets.sync.client import connect

    from conftest import Http

    server = start_server(MODES[mode_name], connection, workdir, {"WS4REDIS_TEST_HEARTBEAT": ""})
    try:
        ws = connect(f"{server.ws}/ws/conn?subscribe-broadcast&publish-broadcast&echo", open_timeout=5)
        ws.send("from the client")
        assert ws.recv(timeout=5) == "from the client"
        Http(server.http).publish("conn", "from a view", broadcast=True)
        assert ws.recv(timeout=5) == "from a view"
        ws.close()
    finally:
        server.stop()


@pytest.mark.parametrize("form", ["url", "ws4redis dict"])
@pytest.mark.parametrize("mode_name", ["pywsgi", "runserver"])
def test_redis_over_a_unix_socket(mode_name, form, tmp_path, django_setup, workdir):
    """``unix://`` or ws4redis' ``{"unix_socket_path": ...}``; runserver is not monkey-patched, so this is the hub's own gevent socket."""
    redis = RedisServer(tmp_path, unix_socket=True)
    redis.start()
    try:
        connection = redis.unix_url if form == "url" else json.dumps({"unix_socket_path": str(redis.unix_path), "db": 0})
        _echo_and_publish_through(mode_name, connection, workdir)
    finally:
        redis.stop()


def test_redis_over_tls_with_ws4redis_ssl_options(tmp_path, django_setup, workdir):
    """ws4redis' ``{"ssl": True, "ssl_ca_certs": ...}`` dict: the hub and the publisher speak TLS to a redis-server's tls-port."""
    import shutil
    import subprocess

    from conftest import require

    require(shutil.which("openssl") is not None, "openssl is not installed (apt-get install openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    redis = RedisServer(tmp_path)
    # The TLS port is the one the fixture waits for; the plain port is closed.
    redis.extra_args = ("--port", "0", "--tls-port", str(redis.port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                        "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no")
    redis.start()
    try:
        connection = json.dumps({"host": "localhost", "port": redis.port, "db": 0, "password": None, "ssl": True,
                                 "ssl_cert_reqs": "required", "ssl_ca_certs": str(cert)})
        _echo_and_publish_through("pywsgi", connection, workdir)
    finally:
        redis.stop()


def test_client_that_stops_reading_is_closed_and_let_go(own_redis, django_setup, workdir):
    """A client that reads nothing must not hold the server's memory: after
    WS4REDIS_MAX_PENDING unsent messages it is closed (1013) and detached."""
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="", WS4REDIS_TEST_MAX_PENDING="20")
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.settimeout(5)
        sock.sendall(f"GET /ws/stalled?subscribe-broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        assert sock.recv(12) == b"HTTP/1.1 101"
        publisher = own_redis.client()
        payload = b"x" * 60000
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and stats(server)["hubs"][0]["listeners"]:
            for _ in range(50):
                publisher.publish("broadcast:stalled", payload)
            time.sleep(0.2)
        assert stats(server)["hubs"][0]["listeners"] == 0, "the stalled client is still attached"
        assert "closing with 1013" in server.log_text()
        sock.close()
    finally:
        server.stop()


@pytest.mark.parametrize("mode_name", ["pywsgi", "gunicorn-geventwebsocket", "uwsgi"])
def test_peer_that_never_reads_or_answers_is_pinged_closed_and_reaped(mode_name, own_redis, django_setup, workdir):
    server = start(mode_name, own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="",
                   WS4REDIS_TEST_PING_INTERVAL="1", WS4REDIS_TEST_PING_TIMEOUT="1")
    try:
        sock = raw_websocket(server, "/ws/reap?subscribe-broadcast")
        time.sleep(1 + 1 + 2 + 3 + 1)  # ping after 1 s, no answer for 1 s, close timeout 2 s, ticks of 1 s
        frames = read_frames_until_close(sock)
        assert frames[0][0] == 0x9, frames
        assert int.from_bytes(frames[-1][1][:2], "big") == 1011
        sock.settimeout(5)
        assert sock.recv(10) == b"", "the server did not end the connection"
        assert stats(server)["hubs"][0]["listeners"] == 0
    finally:
        server.stop()


@pytest.mark.parametrize("mode_name", ["pywsgi", "gunicorn-geventwebsocket", "uwsgi"])
def test_each_open_socket_takes_one_descriptor_in_the_worker(mode_name, own_redis, django_setup, workdir):
    server = start(mode_name, own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="")
    try:
        worker = psutil.Process(server.pids()[-1])

        async def scenario():
            before = worker.num_fds()
            sockets = await open_many(f"{server.ws}/ws/fds?subscribe-broadcast", 90)  # uWSGI mode: --gevent 100
            after = worker.num_fds()
            await asyncio.gather(*(ws.close() for ws in sockets))
            return before, after

        before, after = asyncio.run(scenario())
        assert (after - before) / 90 <= 1.05, (before, after)
    finally:
        server.stop()


def test_a_publication_delivered_by_the_healing_is_not_delivered_again_when_its_live_copy_arrives():
    """The healing's XRANGE (command connection) can overtake the live PUBLISH (subscription): 601 of 600 before."""
    from ws4redis_mw.hub import _ChannelMemory

    memory = _ChannelMemory("e", 10)
    assert memory.add(11, b"healed")  # delivered by the healing
    assert not memory.add(11, b"healed")  # its live copy, later: dropped
    assert memory.add(12, b"next")


def test_an_offset_handed_out_again_with_another_publication_is_delivered():
    """A failover that lost writes: the promoted replica reuses offsets, with other publications."""
    from ws4redis_mw.hub import _ChannelMemory

    memory = _ChannelMemory("e", 10)
    assert memory.add(11, b"before the failover")
    assert memory.add(11, b"after the failover")  # another publication: delivered
    assert not memory.add(11, b"after the failover")  # its repeat: not


def test_a_publication_known_from_a_history_read_is_still_delivered_live():
    """A recovering handshake's read knows offsets the plain listeners have not been handed yet."""
    from ws4redis_mw import history
    from ws4redis_mw.hub import _ChannelMemory

    memory = _ChannelMemory.from_view(history.View("e", 12, ((11, b"a"), (12, b"b"))))
    assert memory.add(12, b"b")  # live, late: plain listeners still get it
    assert not memory.add(12, b"b")
