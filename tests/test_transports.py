"""uWSGI set-ups that cannot serve websockets: the reason in a startup warning, 501 for upgrades, pages still served.

A uWSGI without its gevent loop would hold a worker per websocket for the
socket's whole life; its ``--http`` router without ``--http-websockets``
passes the 101 on but never the client's frames (the client would hang);
``--http11-socket`` keeps the connection for the next request (uWSGI 2.0.31's
worker aborts in libev once a websocket on it closes); ``--https-socket``
decrypts in the worker, so the descriptor we would read carries TLS records
(the websocket got 1002 on its first frame).  The working modes are
in tests/servers.py and run the whole protocol suite.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from conftest import require, start_server
from servers import ServerMode, uwsgi_command, uwsgi_missing

UNUSABLE = {
    "no-gevent-loop": (("--http-socket", "{address}", "--http-websockets"), "without its gevent loop"),
    "router-without-http-websockets": (("--http", "{address}", "--gevent", "10"), "unless --http-websockets is given"),
    "http11-socket": (("--http11-socket", "{address}", "--http-websockets", "--gevent", "10"), "--http11-socket"),
    "https-socket": (("--https-socket", "{address},{cert},{key}", "--http-websockets", "--gevent", "10"), "--https-socket"),
}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate and its key, for uWSGI's --https-socket."""
    require(shutil.which("openssl") is not None, "openssl is not installed (apt-get install openssl)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def uwsgi_mode(name: str, options, cert=None, key=None) -> ServerMode:
    return ServerMode(
        f"uwsgi-{name}",
        lambda port, workdir: uwsgi_command(*(option.format(address=f"127.0.0.1:{port}", cert=cert, key=key) for option in options)),
        unavailable=lambda: uwsgi_missing(),
    )


@pytest.mark.parametrize("name", list(UNUSABLE))
def test_unusable_uwsgi_setup_is_named_at_startup_and_upgrades_get_501(name, redis_server, django_setup, workdir, request):
    options, reason = UNUSABLE[name]
    tls = name == "https-socket"
    cert, key = request.getfixturevalue("certificate") if tls else (None, None)
    server = start_server(uwsgi_mode(name, options, cert, key), redis_server.url, workdir, {"WS4REDIS_TEST_HEARTBEAT": ""})
    unverified = ssl.create_default_context()
    unverified.check_hostname, unverified.verify_mode = False, ssl.CERT_NONE
    ws_base, http_base = server.ws, server.http
    if tls:
        ws_base, http_base = ws_base.replace("ws://", "wss://"), http_base.replace("http://", "https://")
    try:
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{ws_base}/ws/foobar?subscribe-broadcast", open_timeout=5, ssl=unverified if tls else None)
        response = refused.value.response
        assert response.status_code == 501
        assert reason in response.body.decode()
        with urllib.request.urlopen(f"{http_base}/hello", timeout=5, context=unverified) as page:  # Django is still served
            assert page.status == 203  # the test view's own status
        deadline = time.monotonic() + 5
        while "websocket upgrades will be refused with 501: " not in server.log_text():
            assert time.monotonic() < deadline, server.log_text()
            time.sleep(0.1)
        assert reason in server.log_text()
    finally:
        server.stop()


def test_uwsgi_websockets_hold_no_async_core(redis_server, django_setup, workdir):
    """Under uWSGI the request returns once the socket is open: 20 websockets on a worker with 4 async cores."""
    from helpers import recv

    mode = uwsgi_mode("four-cores", ("--http-socket", "{address}", "--http-websockets", "--gevent", "4",
                                     "--gevent-early-monkey-patch"))
    server = start_server(mode, redis_server.url, workdir, {"WS4REDIS_TEST_HEARTBEAT": ""})
    try:
        sockets = [connect(f"{server.ws}/ws/cores?subscribe-broadcast", open_timeout=5) for _ in range(20)]
        with urllib.request.urlopen(f"{server.http}/hello", timeout=5) as page:
            assert page.status == 203
        from conftest import Http

        Http(server.http).publish("cores", "to all twenty", broadcast=True)
        assert [recv(ws) for ws in sockets] == ["to all twenty"] * 20
        for ws in sockets:
            ws.close()
    finally:
        server.stop()


def test_refusals_under_wsgiref_are_valid_responses_not_500():
    """wsgiref (Django's LiveServerTestCase, plain runserver) forbids hop-by-hop headers: a 426 must not become a 500."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from ws4redis_mw.middleware import WebSocketMiddleware
    from ws4redis_mw.settings import Settings

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    def page(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"page"]

    server = make_server("127.0.0.1", 0, WebSocketMiddleware(page, settings=Settings(history=None)), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with urllib.request.urlopen(base + "/page", timeout=5) as response:
            assert response.read() == b"page"
        with pytest.raises(urllib.error.HTTPError) as plain:
            urllib.request.urlopen(base + "/ws/chat", timeout=5)
        assert plain.value.code == 426
        # wsgiref answers in HTTP/1.0, which websocket clients do not read: the status line is enough.
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as sock:
            sock.sendall(b"GET /ws/chat?subscribe-broadcast HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            assert sock.recv(4096).split(b"\r\n")[0].split(b" ")[1] == b"501"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_uwsgi_options_that_leave_clients_unanswered_or_lock_the_worker_are_named():
    from ws4redis_mw.transports import uwsgi_advice

    assert uwsgi_advice({"http": b"127.0.0.1:8000", "buffer-size": b"32768"}) == []
    assert uwsgi_advice({"http-socket": b"/run/web.socket", "buffer-size": b"32768", "socket-timeout": b"10"}) == []
    default = uwsgi_advice({"http": b":8000"})
    assert len(default) == 1 and "buffer-size is 4096" in default[0]
    bare = uwsgi_advice({"http-socket": [b"/a", b"/b"], "buffer-size": [b"4096", b"65535"]})
    assert len(bare) == 1 and "socket-timeout" in bare[0]
