"""Hostile clients against a real server: each attack is performed, and shown to fail.

Each test starts its own server process with the limit it exercises (the test
project lifts the production limits unless told otherwise).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from conftest import Http

_FLOODER = """
import socket, sys, time
sys.path.insert(0, sys.argv[1])
from helpers import client_frame, raw_websocket, read_close_code
class Server: port = int(sys.argv[2])
sock = raw_websocket(Server, sys.argv[3])
chunk = client_frame(0x1, b"") * 10000
deadline = time.monotonic() + float(sys.argv[4])
try:
    while time.monotonic() < deadline:
        sock.sendall(chunk)
except OSError:
    pass
try:
    print(read_close_code(sock, timeout=10))
except (AssertionError, OSError) as exc:
    print("no close frame:", exc)
"""


def flood(server, path: str, seconds: float) -> subprocess.Popen:
    """A client in a process of its own that opens ``path`` and sends empty frames as fast as it can; prints the close code."""
    return subprocess.Popen([sys.executable, "-c", _FLOODER, str(Path(__file__).parent), str(server.port), path, str(seconds)],
                            stdout=subprocess.PIPE, text=True)


def victim_latencies(victim, redis_server, count: int, pause: float = 0.0) -> list:
    """Publish ``count`` messages to the victim's channel; seconds until each arrived (all must, in order)."""
    latencies = []
    for i in range(count):
        sent = time.monotonic()
        redis_server.client().publish("broadcast:victim", f"m{i}")
        assert victim.recv(timeout=5) == f"m{i}"
        latencies.append(time.monotonic() - sent)
        time.sleep(pause)
    return latencies


@pytest.mark.parametrize("mode_name", ["pywsgi", "gunicorn-geventwebsocket"])
def test_frame_flood_is_closed_with_1008_while_others_are_served(serve, redis_server, mode_name):
    server = serve(mode_name, WS4REDIS_TEST_MAX_FRAME_RATE="1000", WS4REDIS_TEST_HEARTBEAT="")
    with connect(server.ws + "/ws/victim?subscribe-broadcast", open_timeout=5) as victim:
        flooder = flood(server, "/ws/flood?subscribe-broadcast", 5)
        time.sleep(0.5)
        latencies = victim_latencies(victim, redis_server, 20, pause=0.05)
        output, _ = flooder.communicate(timeout=30)
    assert output.strip() == "1008"
    print(f"\n{mode_name}: victim latency under a frame flood: max {max(latencies) * 1000:.1f} ms")


def test_unlimited_frame_flood_does_not_freeze_the_worker(serve, redis_server):
    server = serve("pywsgi", WS4REDIS_TEST_HEARTBEAT="")  # no frame rate limit: fairness alone
    flooder = flood(server, "/ws/flood?subscribe-broadcast", 4)
    time.sleep(0.5)
    with connect(server.ws + "/ws/victim?subscribe-broadcast", open_timeout=5) as victim:
        latencies = victim_latencies(victim, redis_server, 10)
        started = time.monotonic()
        with urllib.request.urlopen(server.http + "/hello", timeout=5) as response:
            assert response.status == 203  # the test project's view answers 203
        page_time = time.monotonic() - started
    flooder.communicate(timeout=30)
    print(f"\nvictim latency under an unlimited frame flood: max {max(latencies) * 1000:.1f} ms, a page in {page_time * 1000:.1f} ms")
    assert max(latencies) < 1.0 and page_time < 1.0  # the first design: 8.5 s and 4.1 s


def test_publishing_faster_than_the_rate_is_closed_with_1008(serve):
    server = serve(WS4REDIS_TEST_MAX_PUBLISH_RATE="5", WS4REDIS_TEST_PUBLISH_BURST="10")
    with connect(server.ws + "/ws/chatty?publish-broadcast", open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed):
            for i in range(100):
                ws.send(f"spam {i}")
                time.sleep(0.001)
            ws.recv(timeout=5)
        assert ws.close_code == 1008


def test_publishing_more_bytes_per_second_than_the_rate_is_closed_with_1008_and_others_go_on(serve):
    """One anonymous publisher fanned out to every subscriber costs the worker per byte: bounded in bytes too."""
    server = serve(WS4REDIS_TEST_MAX_PUBLISH_BYTES_RATE="100000")  # 100 kB/s; messages of 20 kB: 5 per second
    with connect(server.ws + "/ws/bulky?subscribe-broadcast", open_timeout=5) as listener, \
            connect(server.ws + "/ws/bulky?publish-broadcast", open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed):
            for _ in range(40):
                ws.send("x" * 20_000)
                time.sleep(0.01)
            ws.recv(timeout=5)
        assert ws.close_code == 1008 and "bytes" in ws.close_reason
        with connect(server.ws + "/ws/bulky?publish-broadcast", open_timeout=5) as polite:
            polite.send("small")
            while (received := listener.recv(timeout=5)) != "small":
                assert received == "x" * 20_000


def test_sockets_per_address_are_capped_with_429(serve):
    server = serve(WS4REDIS_TEST_MAX_SOCKETS_PER_IP="3")
    url = server.ws + "/ws/many?subscribe-broadcast"
    held = [connect(url, open_timeout=5) for _ in range(3)]
    with pytest.raises(InvalidStatus) as info:
        connect(url, open_timeout=5)
    assert info.value.response.status_code == 429
    held.pop().close()
    deadline = time.monotonic() + 5
    while True:  # the closed socket is counted out once the server has closed it
        try:
            held.append(connect(url, open_timeout=5))
            break
        except InvalidStatus:
            assert time.monotonic() < deadline, "a slot freed by a closed socket was never given back"
            time.sleep(0.1)
    for ws in held:
        ws.close()


def test_sockets_per_user_are_capped_with_429(serve):
    server = serve(WS4REDIS_TEST_MAX_SOCKETS_PER_USER="2")
    http = Http(server.http)
    http.login("mallory")
    cookie = http.cookie_header()
    url = server.ws + "/ws/mine?subscribe-user"
    held = [connect(url, open_timeout=5, additional_headers={"Cookie": cookie}) for _ in range(2)]
    with pytest.raises(InvalidStatus) as info:
        connect(url, open_timeout=5, additional_headers={"Cookie": cookie})
    assert info.value.response.status_code == 429
    with connect(server.ws + "/ws/mine?subscribe-broadcast", open_timeout=5):  # anonymous: not this user's count
        pass
    for ws in held:
        ws.close()


def test_anonymous_publishes_are_not_kept_but_a_users_are(serve, redis_server):
    server = serve()
    with connect(server.ws + "/ws/keep?publish-broadcast", open_timeout=5) as ws:
        ws.send("anonymous")
        ws.send("--heartbeat--")  # answered after the publish: the publish is done
        ws.recv(timeout=5)
    assert redis_server.client().get("broadcast:keep") is None
    http = Http(server.http)
    http.login("alice")
    with connect(server.ws + "/ws/keep?publish-broadcast", open_timeout=5, additional_headers={"Cookie": http.cookie_header()}) as ws:
        ws.send("from alice")
        ws.send("--heartbeat--")
        ws.recv(timeout=5)
    assert redis_server.client().get("broadcast:keep") == b"from alice"


@pytest.mark.parametrize("mode_name", ["pywsgi", "runserver", "gunicorn-pywsgi"])
def test_idle_connection_without_a_request_is_closed_after_the_handshake_timeout(serve, mode_name):
    server = serve(mode_name, WS4REDIS_TEST_HANDSHAKE_TIMEOUT="1")
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    started = time.monotonic()
    assert idle.recv(100) == b""  # closed by the server, not by our timeout
    assert time.monotonic() - started < 5
    idle.close()


@pytest.mark.parametrize("part", ["request line", "headers"])
@pytest.mark.parametrize("mode_name", ["pywsgi", "runserver", "gunicorn-pywsgi"])
def test_a_request_head_trickled_byte_by_byte_is_cut_at_the_deadline(serve, mode_name, part):
    """Slowloris: a byte every 0.3 s never lets the 1 s silence timeout fire; the deadline does."""
    server = serve(mode_name, WS4REDIS_TEST_HANDSHAKE_TIMEOUT="1")
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    if part == "headers":
        slow.sendall(b"GET /ws/x?subscribe-broadcast HTTP/1.1\r\n")
    started = time.monotonic()
    answer = b""
    try:
        for _ in range(30):  # 9 s of trickling at most
            slow.sendall(b"X" if part == "request line" else b"x-")
            time.sleep(0.3)
    except OSError:  # closed by the server: what the test wants
        pass
    slow.settimeout(2)
    try:
        answer = slow.recv(1000)
    except OSError:
        pass
    elapsed = time.monotonic() - started
    slow.close()
    assert elapsed < 4, f"still open after {elapsed:.1f} s"
    if part == "headers" and answer:
        assert answer.startswith(b"HTTP/1.1 408"), answer


@pytest.mark.parametrize("mode_name", ["pywsgi", "runserver", "gunicorn-pywsgi"])
def test_a_request_line_whose_version_has_no_minor_number_gets_400_and_logs_no_traceback(serve, mode_name):
    server = serve(mode_name)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
        client.sendall(b"GET /ws/x?subscribe-broadcast HTTP/1\r\nHost: 127.0.0.1\r\n\r\n")
        assert client.recv(1000).startswith(b"HTTP/1.1 400"), "no 400"
    time.sleep(0.3)
    assert "Traceback" not in server.log_text()


@pytest.mark.parametrize("mode_name", ["gunicorn-pywsgi", "pywsgi", "runserver", "uwsgi", "nginx-uwsgi"])
def test_a_thousand_slow_and_idle_connections_lock_no_server_out(serve, mode_name):
    """gunicorn's --worker-connections is 1000: 1,100 trickling connections filled it for ever (1,100 idle ones too).

    uWSGI's --http router (the README's command) holds them in the router,
    not in the worker's gevent cores.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))  # the server inherits it
    server = serve(mode_name, WS4REDIS_TEST_HANDSHAKE_TIMEOUT="2")
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(1100)]
    slow = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(1100)]
    try:
        for sock in slow:
            sock.setblocking(False)
        served_at = None
        started = time.monotonic()
        while time.monotonic() - started < 15:
            for sock in slow:
                try:
                    sock.send(b"G")
                except OSError:
                    pass
            try:
                with urllib.request.urlopen(server.http + "/hello", timeout=1) as response:
                    if response.status < 300:
                        served_at = time.monotonic() - started
                        break
            except OSError:
                pass
            time.sleep(0.5)
        assert served_at is not None, "no good request was served in 15 s"
        with connect(server.ws + "/ws/after-the-flood?subscribe-broadcast", open_timeout=5):
            pass
        print(f"\n{mode_name}: a good request served {served_at:.1f} s after 1,100 idle and 1,100 slow connections")
    finally:
        for sock in idle + slow:
            sock.close()
