"""Stopping a server closes its websockets with 1001, so clients reconnect at once."""

from __future__ import annotations

import signal
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import start_server
from servers import SERVER_MODES

MODES = {mode.name: mode for mode in SERVER_MODES}


@pytest.mark.parametrize("mode_name", ["pywsgi", "gunicorn-pywsgi", "nginx-uwsgi"])
def test_sigterm_closes_open_sockets_with_1001(mode_name, redis_server, django_setup, workdir):
    server = start_server(MODES[mode_name], redis_server.url, workdir, {"WS4REDIS_TEST_HEARTBEAT": ""})
    try:
        ws = connect(f"{server.ws}/ws/shutdown?subscribe-broadcast", open_timeout=5)
        # Behind nginx, stop the websocket instance; nginx stays up.
        target = server.backends[-1] if server.backends else server.proc
        started = time.monotonic()
        target.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert time.monotonic() - started < 5
        target.wait(15)
    finally:
        server.stop()
