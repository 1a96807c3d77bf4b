"""uWSGI set-ups that cannot serve websockets: the reason in a startup warning, 501 for upgrades, pages still served.

A uWSGI without its gevent loop would hold a worker per websocket for the
socket's whole life; its ``--http`` router without ``--http-websockets``
passes the 101 on but never the client's frames (the client would hang);
``--http11-socket`` keeps the connection for the next request (uWSGI 2.0.31's
worker aborts in libev once a websocket on it closes).  The working modes are
in tests/servers.py and run the whole protocol suite.
"""

from __future__ import annotations

import time
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from conftest import start_server
from servers import ServerMode, uwsgi_command, uwsgi_missing

UNUSABLE = {
    "no-gevent-loop": (("--http-socket", "{address}", "--http-websockets"), "without its gevent loop"),
    "router-without-http-websockets": (("--http", "{address}", "--gevent", "10"), "unless --http-websockets is given"),
    "http11-socket": (("--http11-socket", "{address}", "--http-websockets", "--gevent", "10"), "--http11-socket"),
}


def uwsgi_mode(name: str, options) -> ServerMode:
    return ServerMode(
        f"uwsgi-{name}",
        lambda port, workdir: uwsgi_command(*(option.format(address=f"127.0.0.1:{port}") for option in options)),
        unavailable=lambda: uwsgi_missing(),
    )


@pytest.mark.parametrize("name", list(UNUSABLE))
def test_unusable_uwsgi_setup_is_named_at_startup_and_upgrades_get_501(name, redis_server, django_setup, workdir):
    options, reason = UNUSABLE[name]
    server = start_server(uwsgi_mode(name, options), redis_server.url, workdir, {"WS4REDIS_TEST_HEARTBEAT": ""})
    try:
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{server.ws}/ws/foobar?subscribe-broadcast", open_timeout=5)
        response = refused.value.response
        assert response.status_code == 501
        assert reason in response.body.decode()
        with urllib.request.urlopen(f"{server.http}/hello", timeout=5) as page:  # Django is still served
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
