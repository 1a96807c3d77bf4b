"""``ws4redis_mw.context_processors.default``: what templates get to open a websocket."""

from __future__ import annotations

import pytest


@pytest.fixture
def rf(django_setup):
    from django.test import RequestFactory

    return RequestFactory()


def context(request, **settings):
    from django.test import override_settings

    from ws4redis_mw.context_processors import default

    with override_settings(**settings):
        return default(request)


def test_websocket_uri_is_the_request_host_and_websocket_url(rf):
    request = rf.get("/page", HTTP_HOST="localhost:8000")
    assert context(request)["WEBSOCKET_URI"] == "ws://localhost:8000/ws/"
    assert context(request, WEBSOCKET_URL="/sockets/")["WEBSOCKET_URI"] == "ws://localhost:8000/sockets/"


def test_websocket_uri_is_wss_when_the_request_is_secure(rf):
    request = rf.get("/page", HTTP_HOST="localhost", secure=True)
    assert context(request)["WEBSOCKET_URI"] == "wss://localhost/ws/"


def test_websocket_host_setting_replaces_the_request_host(rf):
    request = rf.get("/page", HTTP_HOST="localhost")
    assert context(request, WEBSOCKET_HOST="ws.example.com")["WEBSOCKET_URI"] == "ws://ws.example.com/ws/"


def test_heartbeat_is_a_javascript_literal(rf):
    request = rf.get("/page", HTTP_HOST="localhost")
    assert context(request, WS4REDIS_HEARTBEAT="--heartbeat--")["WS4REDIS_HEARTBEAT"] == '"--heartbeat--"'
    assert context(request, WS4REDIS_HEARTBEAT=None)["WS4REDIS_HEARTBEAT"] == "null"
    assert context(request, WS4REDIS_HEARTBEAT="")["WS4REDIS_HEARTBEAT"] == "null"


def test_heartbeat_cannot_end_the_script_element(rf):
    from django.template import Context, Engine

    request = rf.get("/page", HTTP_HOST="localhost")
    literal = context(request, WS4REDIS_HEARTBEAT='</script>"&')["WS4REDIS_HEARTBEAT"]
    html = Engine().from_string("<script>var h = {{ h }};</script>").render(Context({"h": literal}))
    assert html == '<script>var h = "\\u003c/script\\u003e\\"\\u0026";</script>'

