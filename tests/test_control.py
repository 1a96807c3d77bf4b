"""Sockets end with the session: disconnect orders through Redis, logout, and the periodic check.

The first tests are the I/O-free order (:mod:`ws4redis_mw.control`); the
others run real servers (every mode for the logout, two processes for "every
worker"), the test project's SQLite database shared with this process, and
``ws4redis_mw.disconnect`` called from this process as a view or a task would.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from ws4redis_mw.control import SESSION_ENDED, Identity, Order, control_channel

from conftest import Http
from helpers import TIMEOUT, assert_silent, recv, start, warm_hub


def facility() -> str:
    return "f" + uuid.uuid4().hex[:12]


def name() -> str:
    return "u" + uuid.uuid4().hex[:10]


# -- the order, free of I/O ------------------------------------------------------------------


ALICE = Identity("ålice", "s1", "chat")


@pytest.mark.parametrize(("order", "closes"), [
    (Order(user="ålice"), True),
    (Order(user="ålice", facility="chat"), True),
    (Order(user="ålice", facility="news"), False),
    (Order(session="s1"), True),
    (Order(session="s10"), False),
    (Order(user="ålice2"), False),
    (Order(user="ålic"), False),
    (Order(facility="chat"), True),
])
def test_an_order_closes_a_socket_that_matches_every_name_it_gives(order, closes):
    assert order.matches(ALICE) is closes


def test_names_are_compared_whole_braces_and_colons_included():
    odd = Identity("a:{b}", None, "x{y}")
    assert Order(user="a:{b}").matches(odd)
    assert not Order(user="a:").matches(odd) and not Order(user="{b}").matches(odd)
    assert not Order(user="a:{b}").matches(Identity("a:{b}:c", None, "x{y}"))
    assert not Order(session="s1").matches(Identity("ålice", None, "chat"))  # a socket without a session


def test_an_order_that_names_nobody_or_has_a_bad_code_or_reason_is_refused():
    with pytest.raises(ValueError, match="names at least one"):
        Order()
    for code in (999, 1005, 1006, 1015, 2000, 5000):
        with pytest.raises(ValueError, match="close code"):
            Order(user="a", code=code)
    with pytest.raises(ValueError, match="123 bytes"):
        Order(user="a", reason="é" * 62)


def test_an_order_survives_the_wire_and_garbage_is_no_order():
    order = Order(user="ålice:{x}", session="k", facility="f", code=4003, reason="banned")
    assert Order.decode(order.encode()) == order
    for garbage in (b"", b"\xff", b"[]", b"{}", b'{"user": 1}', b'{"user": "a", "code": "4001"}',
                    b'{"user": "a", "code": 1006}', b'{"user": "a", "extra": 1}', b'{"user": "a", "code": true}'):
        assert Order.decode(garbage) is None, garbage


def test_a_session_key_is_never_written_in_a_log_line():
    assert "secret-key" not in str(Order(session="secret-key"))


def test_the_control_channel_is_no_socket_channel_of_any_audience():
    from ws4redis_mw.channels import channel_name

    for prefix in (None, "", "site", "site:a"):
        assert control_channel(prefix) not in {channel_name(prefix, "broadcast", "control"),
                                               channel_name(prefix, "user", "control", "control")}
    assert control_channel("a") != control_channel("b")


# -- real servers ----------------------------------------------------------------------------


def closed_with(ws, timeout: float = TIMEOUT) -> int:
    """The close code ``ws`` gets within ``timeout`` seconds (heartbeats skipped)."""
    deadline = time.monotonic() + timeout
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    assert info.value.rcvd is not None, "no close frame received"
    return info.value.rcvd.code


def socket(server, path: str, cookie: str = ""):
    return ws_connect(server.ws + path, open_timeout=5, close_timeout=2,
                      additional_headers={"Cookie": cookie} if cookie else {})


def test_logout_closes_the_sessions_sockets_with_4001_within_a_second_and_nobody_elses(server, http, connect):
    fac = facility()
    alice, bob = name(), name()
    http.login(alice)
    alice_cookie = http.cookie_header()
    other = Http(server.http)
    other.login(bob)
    path = f"/ws/{fac}?subscribe-user&subscribe-session&subscribe-broadcast"
    alice_sockets = [connect(path, cookie=alice_cookie) for _ in range(2)]
    bob_socket, anonymous = connect(path, cookie=other.cookie_header()), connect(path)
    status, _, body = http.request("/logout", b"")
    assert status == 200, body
    started = time.monotonic()
    for ws in alice_sockets:
        assert closed_with(ws, timeout=1.0) == SESSION_ENDED
    print(f"\nclosed {time.monotonic() - started:.3f} s after the logout's answer")
    other.publish(fac, "still here", broadcast=True)
    assert recv(bob_socket) == "still here"
    assert recv(anonymous) == "still here"


def test_logout_in_one_process_closes_the_sockets_in_another(redis_server, django_setup, workdir):
    first, second = (start("pywsgi", redis_server, workdir) for _ in range(2))
    try:
        http = Http(first.http)
        http.login(name())
        ws = socket(second, f"/ws/{facility()}?subscribe-user", http.cookie_header())
        assert http.request("/logout", b"")[0] == 200
        assert closed_with(ws, timeout=1.0) == SESSION_ENDED
    finally:
        first.stop()
        second.stop()


def test_disconnect_from_django_code_closes_exactly_the_named_sockets(redis_server, django_setup, workdir):
    import ws4redis_mw

    server = start("pywsgi", redis_server, workdir)
    other_site = start("pywsgi", redis_server, workdir, WS4REDIS_TEST_PREFIX="othersite")
    try:
        warm_hub(server)
        users = {"ålice:{x}": Http(server.http), "ålice": Http(server.http), "bob": Http(server.http)}
        for username, client in users.items():
            client.login(username)
        news, chat = facility(), facility()

        def open_as(username, fac, site=server):
            return socket(site, f"/ws/{fac}?subscribe-user&subscribe-broadcast", users[username].cookie_header())

        odd_news, alice_news, alice_chat, bob_news = (open_as("ålice:{x}", news), open_as("ålice", news),
                                                      open_as("ålice", chat), open_as("bob", news))
        alice_elsewhere = open_as("ålice", news, other_site)
        assert ws4redis_mw.disconnect(user="ålice", facility=news, code=4003, reason="banned") >= 1
        assert closed_with(alice_news, timeout=1.0) == 4003
        for ws in (odd_news, alice_chat, bob_news, alice_elsewhere):
            assert_silent(ws, 0.3)  # still open: a message would be a failure, a close raises
        from django.contrib.auth.models import User

        ws4redis_mw.disconnect(user=User.objects.get(username="bob"))  # a user object
        assert closed_with(bob_news, timeout=1.0) == SESSION_ENDED
        assert_silent(alice_chat, 0.3)
    finally:
        server.stop()
        other_site.stop()


def test_a_garbage_control_message_closes_nothing_and_is_logged(server, redis_server, http, connect):
    ws = connect(f"/ws/{facility()}?subscribe-broadcast")
    redis = redis_server.client()
    redis.publish(control_channel(None), b"not an order")
    redis.publish(control_channel(None), b'{"user": null}')
    assert_silent(ws, 0.5)
    # A client publishing to a facility named "control" reaches its channel, not the control channel.
    publisher = connect("/ws/control?publish-broadcast&subscribe-broadcast&echo")
    publisher.send('{"facility": null}')
    assert recv(publisher) == '{"facility": null}'
    assert_silent(ws, 0.3)


@pytest.mark.parametrize("ending", ["deactivated", "password changed", "session deleted", "user deleted"])
def test_a_socket_whose_session_ended_without_a_logout_is_closed_at_its_next_check(server, http, connect, ending):
    """The test project checks every WS4REDIS_GROUPS_LIFETIME = 1 s."""
    from django.contrib.auth.models import User
    from django.contrib.sessions.models import Session

    username = name()
    session_key = http.login(username)["session"]
    ws = connect(f"/ws/{facility()}?subscribe-user", cookie=http.cookie_header())
    anonymous = connect(f"/ws/{facility()}?subscribe-broadcast")
    assert_silent(ws, 1.5)  # a check has passed: nothing ended yet
    user = User.objects.get(username=username)
    if ending == "deactivated":
        User.objects.filter(pk=user.pk).update(is_active=False)
    elif ending == "password changed":
        user.set_password("new")
        user.save()
    elif ending == "session deleted":
        Session.objects.filter(session_key=session_key).delete()
    else:
        user.delete()
    assert closed_with(ws, timeout=3.0) == SESSION_ENDED
    assert_silent(anonymous, 0.2)


def test_a_token_is_refused_after_its_sessions_logout_and_its_socket_closes_with_it(server, http, connect):
    from django.contrib.auth.models import User

    username = name()
    http.login(username)
    token = json.loads(http.request("/token")[2])["token"]
    path = f"/ws/{facility()}?subscribe-user&token={urllib.parse.quote(token)}"
    ws = connect(path)  # no cookie: the token's user
    assert http.request("/logout", b"")[0] == 200
    assert closed_with(ws, timeout=1.0) == SESSION_ENDED
    assert_token_refused(server, connect, path)
    http.login(username)  # a new session, a new token; then the password changes
    token = json.loads(http.request("/token")[2])["token"]
    user = User.objects.get(username=username)
    user.set_password("changed")
    user.save()
    assert_token_refused(server, connect, f"/ws/{facility()}?subscribe-user&token={urllib.parse.quote(token)}")


def assert_token_refused(server, connect, path):
    from test_protocol import assert_refused

    assert_refused(server, connect, path, 403, 1008)
