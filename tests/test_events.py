"""Refusals and server-side closes: one log line each, with extra= fields a JSON formatter turns into keys."""

from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from conftest import Http
from helpers import start


def json_lines(server, event):
    lines = []
    for line in server.log_text().splitlines():
        if line.startswith("{"):
            data = json.loads(line)
            if data.get("ws_event") == event:
                lines.append(data)
    return lines


def test_refusals_and_server_closes_are_logged_with_structured_escaped_fields(own_redis, django_setup, workdir):
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="", WS4REDIS_TEST_LOG_JSON="1",
                   WS4REDIS_TEST_MAX_MESSAGE_SIZE="100")
    try:
        with pytest.raises(InvalidStatus):
            connect(f"{server.ws}/ws/bad%0Aname%1B?subscribe-broadcast", open_timeout=5)  # a newline and ESC in the path
        user = Http(server.http)
        user.login("logged")
        ws = connect(f"{server.ws}/ws/log?subscribe-user&publish-broadcast", open_timeout=5,
                     additional_headers={"Cookie": user.cookie_header()})
        ws.send("x" * 200)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        time.sleep(0.2)

        (refused,) = json_lines(server, "refused")
        assert refused["ws_status"] == 400 and refused["level"] == "WARNING"
        assert refused["ws_path"] == "/ws/bad\\nname\\x1b"  # escaped: no raw control character reaches the log
        assert "\n" not in refused["message"] and "\x1b" not in refused["message"]
        assert isinstance(refused["ws_id"], int) and refused["ws_user"] is None and refused["ws_reason"]
        assert refused["ws_addr"] == "127.0.0.1" and "from 127.0.0.1: refused" in refused["message"]
        (closed,) = json_lines(server, "closed")
        assert closed["ws_code"] == 1009 and closed["ws_user"] == "logged" and closed["ws_path"] == "/ws/log"
        assert closed["ws_addr"] == "127.0.0.1"
        assert closed["ws_id"] > refused["ws_id"] and "ws_reason" in closed
    finally:
        server.stop()
