"""Stopping a server closes its websockets with 1001, so clients reconnect at once."""

from __future__ import annotations

import signal
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import start_server
from helpers import warm_hub
from servers import SERVER_MODES, ServerMode, uwsgi_command, uwsgi_missing

MODES = {mode.name: mode for mode in SERVER_MODES}


def close_code_on(process, sig, ws, timeout: float = 10):
    """Send ``sig`` to ``process``; the code of the close frame ``ws`` then gets (``None``: the connection just dropped)."""
    process.send_signal(sig)
    with pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=timeout)
    return info.value.rcvd.code if info.value.rcvd is not None else None



@pytest.mark.parametrize("mode_name", ["pywsgi", "gunicorn-pywsgi", "nginx-uwsgi"])
def test_sigterm_closes_open_sockets_with_1001(mode_name, redis_server, django_setup, workdir):
    server = start_server(MODES[mode_name], redis_server.url, workdir, {"WS4REDIS_TEST_HEARTBEAT": ""})
    try:
        ws = connect(f"{server.ws}/ws/shutdown?subscribe-broadcast", open_timeout=5)
        # Behind nginx, stop the websocket instance; nginx stays up.
        target = server.backends[-1] if server.backends else server.proc
        started = time.monotonic()
        assert close_code_on(target, signal.SIGTERM, ws) == 1001
        assert time.monotonic() - started < 5
        target.wait(15)
    finally:
        server.stop()


# uWSGI standalone.  With --http, the master's SIGTERM/SIGINT handler (kill_them_all in uWSGI's
# core/master_utils.c) sends SIGINT to the workers and SIGKILL to the --http router in the same
# step, before any worker code can run: the router's client connections die with it.  With
# --http-socket there is no router: the worker owns the client's connection and closes it with 1001.
UWSGI_HTTP_SOCKET = ServerMode(
    "uwsgi-http-socket",
    lambda port, workdir: uwsgi_command("--http-socket", f"127.0.0.1:{port}", "--http-websockets", "--gevent", "100",
                                        "--gevent-early-monkey-patch"),
    unavailable=lambda: uwsgi_missing(),
)


def test_uwsgi_http_socket_sigterm_closes_open_sockets_with_1001(redis_server, django_setup, workdir):
    server = start_server(UWSGI_HTTP_SOCKET, redis_server.url, workdir, {"WS4REDIS_TEST_HEARTBEAT": ""})
    try:
        ws = connect(f"{server.ws}/ws/shutdown?subscribe-broadcast", open_timeout=5)
        assert close_code_on(server.proc, signal.SIGTERM, ws) == 1001
        server.proc.wait(15)
    finally:
        server.stop()


def test_uwsgi_http_router_drops_open_sockets_on_sigterm_without_a_close_frame(redis_server, django_setup, workdir):
    """Documents the limitation (docs/deployment.md): if this starts to fail, uWSGI lets the router live longer."""
    server = start_server(MODES["uwsgi"], redis_server.url, workdir, {"WS4REDIS_TEST_HEARTBEAT": ""})
    try:
        ws = connect(f"{server.ws}/ws/shutdown?subscribe-broadcast", open_timeout=5)
        assert close_code_on(server.proc, signal.SIGTERM, ws) is None  # 1006: the router was killed
        server.proc.wait(15)
    finally:
        server.stop()


def test_uwsgi_graceful_reload_closes_open_sockets_with_1001_and_serves_again(redis_server, django_setup, workdir):
    """SIGHUP: the old worker does not wait --worker-reload-mercy for websockets (their requests have returned)."""
    server = start_server(UWSGI_HTTP_SOCKET, redis_server.url, workdir, {"WS4REDIS_TEST_HEARTBEAT": ""})
    try:
        ws = connect(f"{server.ws}/ws/reload?subscribe-broadcast", open_timeout=5)
        started = time.monotonic()
        assert close_code_on(server.proc, signal.SIGHUP, ws) == 1001
        assert time.monotonic() - started < 5
        warm_hub(server)  # the new worker accepts websockets
    finally:
        server.stop()
