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
