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


def test_unusable_allowed_origins_are_refused_at_startup_naming_the_setting():
    from ws4redis_mw import WebSocketMiddleware
    from ws4redis_mw.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="WS4REDIS_ALLOWED_ORIGINS"):
        WebSocketMiddleware(lambda environ, start_response: [], settings=Settings(allowed_origins=["not an origin"]))


def allow_example_pages(origin: str) -> bool:
    return origin == "https://pages.example"


def test_allowed_origins_may_name_a_function_by_its_dotted_path():
    from ws4redis_mw import WebSocketMiddleware
    from ws4redis_mw.origins import parse_origin
    from ws4redis_mw.settings import Settings

    middleware = WebSocketMiddleware(lambda environ, start_response: [],
                                     settings=Settings(allowed_origins="test_middleware.allow_example_pages"))
    own = parse_origin("http://site.example")
    assert middleware._origins.allows("https://pages.example", own)
    assert not middleware._origins.allows("https://evil.example", own)
