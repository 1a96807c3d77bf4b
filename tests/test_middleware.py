"""WebSocketMiddleware given a Settings object: every part of the websocket path uses that one object."""

from __future__ import annotations

import pytest
from websockets.sync.client import connect

from conftest import start_server
from helpers import recv
from servers import PYTHON, ServerMode

PREFIXED = ServerMode(
    "pywsgi-prefixed",
    lambda port, _: [PYTHON, "-m", "ws4redis_mw.serve", "tests.project.wsgi_prefixed:application",
                     "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
)


@pytest.fixture
def prefixed(redis_server, django_setup, workdir):
    server = start_server(PREFIXED, redis_server.url, workdir)
    yield server
    server.stop()


def test_settings_given_to_the_middleware_name_the_channels(prefixed, redis_server):
    with connect(prefixed.ws + "/ws/pre?subscribe-broadcast&publish-broadcast&echo", open_timeout=5) as ws:
        redis = redis_server.client()
        assert redis.publish("broadcast:pre", "unprefixed") == 0  # nobody subscribed to Django's name
        assert redis.publish("x:broadcast:pre", "prefixed") == 1
        assert recv(ws) == "prefixed"
        ws.send("from the client")  # published under the prefix too, and echoed back from there
        assert recv(ws) == "from the client"
        assert redis.get("x:broadcast:pre") is None  # an anonymous client's publish is not kept (WS4REDIS_ANONYMOUS_EXPIRE)
