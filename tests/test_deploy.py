"""The shipped nginx config (examples/deploy/nginx-site.conf) in front of uWSGI, and clients behind and beside it.

The nginx-uwsgi server mode serves the shipped site file itself, with only
its port (not 80) and paths changed (tests/servers.py ``nginx_site``).  Each
client binds its socket to a loopback source address of its own
(127.0.x.y: Linux routes all of 127/8 to lo), so that nginx sees as many
visitors as the test makes.  Handshakes are raw sockets that read the status
line: thousands of them, in one thread, each bounded by a timeout.
"""

from __future__ import annotations

import base64
import http.client
import os
import resource
import socket
import time
from contextlib import ExitStack
from typing import Dict, List, Tuple

import pytest

from servers import NGINX_SITE, ROOT

PATH = "/ws/deploy?subscribe-broadcast"
DISTINCT = 1500  # visitors, each from an address of its own
CAP = 1000  # WS4REDIS_MAX_SOCKETS_PER_IP's default


@pytest.fixture
def sockets():
    """Every socket a test opens, closed after it."""
    with ExitStack() as stack:
        yield stack


def handshake(port: int, source: str, stack: ExitStack, headers: Dict[str, str] | None = None,
              path: str = PATH) -> int:
    """Open a websocket to ``port`` from ``source``; the HTTP status (the socket stays open in ``stack``)."""
    sock = stack.enter_context(socket.socket())
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, f"connection closed before a status line from {source}"
        head += chunk
    return int(head.split()[1])


def get(port: int, path: str, source: str = "127.0.0.1", headers: Dict[str, str] | None = None) -> Tuple[int, bytes]:
    """A plain GET from ``source``: status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def visitors(count: int) -> List[str]:
    """``count`` loopback addresses, none of them 127.0.0.x (the test's own)."""
    return [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(count)]


def raise_open_files(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@pytest.fixture
def nginx(serve):
    raise_open_files(DISTINCT + CAP + 200)
    return serve("nginx-uwsgi", WS4REDIS_TEST_MAX_SOCKETS_PER_IP=str(CAP), WS4REDIS_TEST_METRICS_URL="/ws4redis-metrics")


@pytest.mark.timeout(240)
def test_behind_nginx_the_cap_counts_each_visitor_not_the_proxy(nginx, sockets):
    started = time.monotonic()
    statuses = [handshake(nginx.port, source, sockets) for source in visitors(DISTINCT)]
    assert statuses == [101] * DISTINCT
    distinct_seconds = time.monotonic() - started
    # One visitor at the cap, each socket with a different forged X-Forwarded-For: nginx
    # appends what it saw, and the middleware reads that rightmost entry only.
    one = [handshake(nginx.port, "127.0.0.2", sockets, {"X-Forwarded-For": f"10.0.{i // 250}.{i % 250}"}) for i in range(CAP)]
    assert one == [101] * CAP
    assert handshake(nginx.port, "127.0.0.2", sockets, {"X-Forwarded-For": "10.9.9.9"}) == 429
    assert handshake(nginx.port, "127.0.7.1", sockets) == 101  # the others are not locked out
    assert "from 127.0.0.2: refused: 429" in nginx.log_text()  # the log line names the visitor
    print(f"\n{DISTINCT} visitors in {distinct_seconds:.1f} s; {DISTINCT + CAP + 2} handshakes in "
          f"{time.monotonic() - started:.1f} s through nginx")


def test_behind_nginx_on_another_port_the_sites_own_page_passes_the_origin_check(nginx, sockets):
    port = nginx.port
    assert handshake(port, "127.0.0.3", sockets, {"Origin": f"http://127.0.0.1:{port}"}) == 101
    assert handshake(port, "127.0.0.3", sockets, {"Origin": "http://127.0.0.1"}) == 403  # port 80's page
    assert handshake(port, "127.0.0.3", sockets, {"Origin": "http://127.0.0.1:80"}) == 403
    # nginx replaces a client's X-Forwarded-Proto with its own scheme: no https by claiming it.
    assert handshake(port, "127.0.0.3", sockets, {"Origin": f"https://127.0.0.1:{port}", "X-Forwarded-Proto": "https"}) == 403


def test_behind_nginx_django_sees_the_port_and_the_scheme_nginx_saw(nginx):
    assert get(nginx.port, "/websocket-uri") == (200, f"ws://127.0.0.1:{nginx.port}/ws/".encode())
    assert get(nginx.port, "/websocket-uri", headers={"X-Forwarded-Proto": "https"})[1].startswith(b"ws://")


def test_behind_nginx_static_files_come_from_the_quick_starts_static_root(nginx):
    status, body = get(nginx.port, "/static/ws4redis_mw/ws4redis.js")
    assert status == 200 and body == (ROOT / "ws4redis_mw" / "static" / "ws4redis_mw" / "ws4redis.js").read_bytes()
    # The shipped directory is the Quick start's STATIC_ROOT (BASE_DIR / "staticfiles", the project in /srv/mysite).
    assert "alias /srv/mysite/staticfiles/;" in NGINX_SITE.read_text()
    assert 'STATIC_ROOT = BASE_DIR / "staticfiles"' in (ROOT / "README.md").read_text()


def test_behind_nginx_metrics_answer_this_host_only(nginx):
    status, body = get(nginx.port, "/ws4redis-metrics")
    assert status == 200 and b"ws4redis_mw_connections" in body  # the visitor 127.0.0.1 is allowed
    assert get(nginx.port, "/ws4redis-metrics", source="127.0.0.9")[0] == 403
    assert get(nginx.port, "/ws4redis-metrics", source="127.0.0.9", headers={"X-Forwarded-For": "127.0.0.1"})[0] == 403


def test_a_forged_forwarded_for_from_an_untrusted_peer_changes_nothing(serve, sockets):
    # Only 127.0.0.1 is a proxy here: a client at 127.0.0.7 is a visitor, whatever it claims.
    server = serve("pywsgi", WS4REDIS_TEST_TRUSTED_PROXIES="127.0.0.1", WS4REDIS_TEST_MAX_SOCKETS_PER_IP="5",
                   WS4REDIS_TEST_METRICS_URL="/ws4redis-metrics")
    forged = [handshake(server.port, "127.0.0.7", sockets, {"X-Forwarded-For": f"203.0.113.{i}"}) for i in range(5)]
    assert forged == [101] * 5
    assert handshake(server.port, "127.0.0.7", sockets, {"X-Forwarded-For": "203.0.113.99"}) == 429
    assert handshake(server.port, "127.0.0.8", sockets) == 101
    assert get(server.port, "/ws4redis-metrics", source="127.0.0.7", headers={"X-Forwarded-For": "127.0.0.1"})[0] == 403
    # The trusted proxy's header is read: it speaks for a visitor at 127.0.0.7, who is not allowed.
    assert get(server.port, "/ws4redis-metrics", headers={"X-Forwarded-For": "127.0.0.7"})[0] == 403
    assert get(server.port, "/ws4redis-metrics")[0] == 200
