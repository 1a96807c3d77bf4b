"""Token authentication (``ws4redis_mw.tokens``) against a real server, with a websocket client that has no cookie.

The test project sets ``WS4REDIS_PROCESS_REQUEST`` to the tokens hook and
``WS4REDIS_TOKEN_MAX_AGE`` to 3 s; its ``/token`` view hands out tokens.
"""

from __future__ import annotations

import time
import uuid

import pytest
from test_protocol import assert_refused, facility, recv

MAX_AGE = 3.0  # WS4REDIS_TOKEN_MAX_AGE of the test project


def token_for(http) -> str:
    import json

    status, _, body = http.request("/token")
    assert status == 200, body
    return json.loads(body)["token"]


@pytest.fixture(scope="session")
def old_token(redis_server, django_setup):
    """A token made once for the session's first test that asks: (username, token, time made)."""
    from django.contrib.auth.models import User

    from ws4redis_mw.tokens import make_token

    user = User.objects.create(username="old" + uuid.uuid4().hex[:8])
    return user.username, make_token(user), time.monotonic()


def test_valid_token_opens_the_users_channel_without_a_cookie(server, connect):
    from conftest import Http

    http, username, name = Http(server.http), "t" + uuid.uuid4().hex[:8], facility()
    http.login(username)
    ws = connect(f"/ws/{name}?subscribe-user&token={token_for(http)}")
    http.publish(name, "for the token's user", users=[username])
    assert recv(ws) == "for the token's user"


def test_expired_token_is_refused(server, connect, old_token):
    username, token, made = old_token
    time.sleep(max(0.0, made + MAX_AGE + 0.5 - time.monotonic()))
    assert_refused(server, connect, f"/ws/{facility()}?subscribe-user&subscribe-broadcast&token={token}", 403, 1008)


def test_altered_token_is_refused(server, connect):
    from conftest import Http

    http = Http(server.http)
    http.login("a" + uuid.uuid4().hex[:8])
    token = token_for(http)
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert_refused(server, connect, f"/ws/{facility()}?subscribe-user&subscribe-broadcast&token={altered}", 403, 1008)


def test_value_signed_with_the_secret_key_for_another_purpose_is_refused(server, connect, django_setup):
    from django.contrib.auth.models import User
    from django.core import signing

    user = User.objects.create(username="f" + uuid.uuid4().hex[:8])
    forged = signing.dumps(str(user.pk), compress=False)  # no salt: e.g. a value from another part of the site
    assert_refused(server, connect, f"/ws/{facility()}?subscribe-user&subscribe-broadcast&token={forged}", 403, 1008)


def test_token_of_an_inactive_user_is_refused(server, connect, django_setup):
    from django.contrib.auth.models import User

    from ws4redis_mw.tokens import make_token

    user = User.objects.create(username="i" + uuid.uuid4().hex[:8], is_active=False)
    assert_refused(server, connect, f"/ws/{facility()}?subscribe-user&subscribe-broadcast&token={make_token(user)}", 403, 1008)


# -- a token socket ends at its token's expiry, unless the client renews it ----------


def token_socket(server, connect, flags: str = "subscribe-user"):
    """(Http logged in as a new user, its username, the facility, a socket opened with a token of that session, when it was made)."""
    import urllib.parse

    from conftest import Http

    http, username, name = Http(server.http), "r" + uuid.uuid4().hex[:8], facility()
    http.login(username)
    made = time.monotonic()
    ws = connect(f"/ws/{name}?{flags}&token={urllib.parse.quote(token_for(http))}")
    return http, username, name, ws, made


#: The expiry tests wait a whole token lifetime: run in one gevent mode and under uWSGI (its
#: own transport), as the rule lives in the I/O-free bridge and the timer is the hub's in every mode.
timed_modes = pytest.mark.parametrize("server", ["pywsgi", "uwsgi"], indirect=True)


def renewal(token: str) -> str:
    import json

    return json.dumps({"type": "token", "token": token})


@timed_modes
def test_a_token_socket_is_closed_with_4002_at_its_tokens_expiry(server, connect):
    from test_control import closed_with

    http, username, name, ws, made = token_socket(server, connect)
    http.publish(name, "while the token is good", users=[username])
    assert recv(ws) == "while the token is good"
    assert closed_with(ws, timeout=MAX_AGE + 3) == 4002
    assert time.monotonic() - made >= MAX_AGE - 1.5  # not before it expired (a token's time is whole seconds)


@pytest.mark.parametrize("mode", ["pywsgi", "uwsgi"])
def test_a_token_socket_renewed_with_a_fresh_token_outlives_the_first_one_and_ends_at_the_second(serve, mode):
    """With a 6 s max age: a token's time is whole seconds and ticks are 1 s apart, so 3 s leaves no margin."""
    import urllib.parse

    from test_control import closed_with
    from websockets.sync.client import connect as ws_connect

    from conftest import Http

    max_age = 6.0
    server = serve(mode, WS4REDIS_TEST_TOKEN_MAX_AGE=str(max_age))
    http, username, name = Http(server.http), "r" + uuid.uuid4().hex[:8], facility()
    http.login(username)
    made = time.monotonic()
    with ws_connect(f"{server.ws}/ws/{name}?subscribe-user&token={urllib.parse.quote(token_for(http))}",
                    open_timeout=5, close_timeout=2) as ws:
        time.sleep(max_age / 2)
        renewed = time.monotonic()
        ws.send(renewal(token_for(http)))  # good until >= renewed + 5 s
        # Unrenewed, the socket would be closed by now: the first token expired by made + 6 s, the next tick within 1 s.
        time.sleep(max(0.0, made + max_age + 1.2 - time.monotonic()))
        http.publish(name, "after the first token expired", users=[username])
        assert recv(ws) == "after the first token expired"
        assert closed_with(ws, timeout=max_age) == 4002
        assert time.monotonic() - renewed >= max_age - 1.5


def test_a_renewal_is_not_published_and_a_cookie_socket_publishes_the_same_text(server, connect):
    http, username, name, ws, _ = token_socket(server, connect, "subscribe-user&publish-user")
    listener = connect(f"/ws/{name}?subscribe-user", cookie=http.cookie_header())
    fresh = token_for(http)
    ws.send(renewal(fresh))
    ws.send("published")
    assert recv(listener) == "published"  # the renewal before it never reached the channel
    cookie_socket = connect(f"/ws/{name}?publish-user", cookie=http.cookie_header())
    cookie_socket.send(renewal(fresh))  # no token, no lifetime: text like any other
    assert recv(listener) == renewal(fresh)


@pytest.mark.parametrize("kind", ["another user's", "forged"])
def test_a_renewal_with_a_bad_token_closes_with_1008(server, connect, kind):
    from test_control import closed_with

    from conftest import Http

    _, _, _, ws, _ = token_socket(server, connect)
    if kind == "forged":
        token = "forged:1abcde:" + "x" * 27
    else:
        other = Http(server.http)
        other.login("o" + uuid.uuid4().hex[:8])
        token = token_for(other)
    ws.send(renewal(token))
    assert closed_with(ws, timeout=2.0) == 1008


def test_a_renewal_after_a_password_change_closes_with_4001(server, connect, django_setup):
    from django.contrib.auth.models import User
    from test_control import closed_with

    http, username, _, ws, _ = token_socket(server, connect)
    fresh = token_for(http)  # made before the change
    user = User.objects.get(username=username)
    user.set_password("changed")
    user.save()
    ws.send(renewal(fresh))
    assert closed_with(ws, timeout=2.0) == 4001
