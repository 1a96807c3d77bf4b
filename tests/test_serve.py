"""``python -m ws4redis_mw.serve`` on a unix socket (``--bind unix:PATH``), as nginx would reach it."""

from __future__ import annotations

import signal
import socket
import subprocess

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import unix_connect

from conftest import require
from servers import PYTHON, SERVER_MODES, Server, stop_process, wait_for_unix_socket


def test_runner_serves_pages_and_websockets_on_a_unix_socket_and_closes_them_with_1001(redis_server, django_setup, workdir, tmp_path):
    require(len(str(tmp_path)) < 90, "the socket path must fit in sun_path")
    path = tmp_path / "ws.sock"
    path.write_text("a stale file from a previous run")  # replaced, as after a crash
    pywsgi = next(mode for mode in SERVER_MODES if mode.name == "pywsgi")
    env = Server(pywsgi, redis_server.url, workdir, {"WS4REDIS_TEST_HEARTBEAT": ""}).env()
    proc = subprocess.Popen([PYTHON, "-m", "ws4redis_mw.serve", "tests.project.wsgi:application", "--bind", f"unix:{path}",
                             "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_unix_socket(path, proc)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 203") and b"hello from django" in response
        with unix_connect(str(path), "ws://localhost/ws/unix?subscribe-broadcast&publish-broadcast&echo", open_timeout=5) as ws:
            ws.send("over a unix socket")
            assert ws.recv(timeout=5) == "over a unix socket"
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert proc.wait(10) == 0
    finally:
        stop_process(proc)
