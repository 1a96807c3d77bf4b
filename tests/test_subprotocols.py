"""WS4REDIS_SUBPROTOCOLS: the site names the subprotocols it speaks, in every kind of server.

tests/test_protocol.py shows the default (the client's first offer, as
ws4redis did) in every mode; here a list chooses, under the servers that do
the handshake in three different ways: ours (pywsgi), gevent-websocket's
handler (before the application runs) and uWSGI's own.
"""

from __future__ import annotations

import uuid

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ws4redis_mw.handshake import Refusal, select_subprotocol, validate_subprotocols

from helpers import start


@pytest.mark.parametrize(("header", "supported", "selected"), [
    (None, None, None),
    ("", ("chat",), None),
    ("b, a", None, "b"),
    ("b, a", ("a", "b"), "b"),  # the client's order of preference
    ("x,a", ("a",), "a"),
    ("  a  ", ("a",), "a"),
])
def test_the_first_offer_the_site_speaks_is_selected(header, supported, selected):
    assert select_subprotocol(header, supported) == selected


@pytest.mark.parametrize(("header", "supported"), [("x, y", ("a",)), ("a b", None), ("a,,b", None), ("a;q=1", None)])
def test_an_offer_with_nothing_spoken_or_malformed_is_refused_400(header, supported):
    with pytest.raises(Refusal) as refused:
        select_subprotocol(header, supported)
    assert refused.value.status == 400
    assert header not in refused.value.reason  # what the client sent goes to the log only


def test_a_setting_that_names_no_token_is_refused_at_startup():
    assert validate_subprotocols("chat") == ("chat",)
    assert validate_subprotocols(["a", "b.v2"]) == ("a", "b.v2")
    for bad in (["a b"], [""], [1], ["ü"]):
        with pytest.raises(ValueError, match="not a subprotocol name"):
            validate_subprotocols(bad)


@pytest.mark.parametrize("mode_name", ["pywsgi", "gunicorn-geventwebsocket", "uwsgi"])
def test_the_sites_list_chooses_in_every_kind_of_handshake(mode_name, redis_server, django_setup, workdir):
    server = start(mode_name, redis_server, workdir, WS4REDIS_TEST_SUBPROTOCOLS="chat.v1,chat.v2")
    try:
        path = f"{server.ws}/ws/f{uuid.uuid4().hex[:8]}?subscribe-broadcast"
        with connect(path, subprotocols=["other", "chat.v2", "chat.v1"], open_timeout=10) as ws:
            assert ws.subprotocol == "chat.v2"  # not "other", and one name, not the whole offer (uWSGI's echo)
        with connect(path, open_timeout=10) as ws:
            assert ws.subprotocol is None
        if server.mode.refuses_after_upgrade:
            with connect(path, subprotocols=["other"], open_timeout=10) as ws:
                assert ws.subprotocol is None
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=5)
                assert ws.close_code == 1008
        else:
            with pytest.raises(InvalidStatus) as refused:
                connect(path, subprotocols=["other"], open_timeout=10)
            assert refused.value.response.status_code == 400
    finally:
        server.stop()
