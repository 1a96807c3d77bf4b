"""Short-lived signed tokens: websockets for clients that have no session cookie.

A view of the site (where the client is authenticated by any means Django
knows) hands out ``make_token(request.user)``; the client opens
``ws://host/ws/facility?subscribe-user&token=<token>``.  With
``WS4REDIS_PROCESS_REQUEST = "ws4redis_mw.tokens.process_request"`` the
handshake then runs as that user.

Rules of this module:

* A token is ``django.core.signing.dumps`` of the user's primary key, salted
  with :data:`SALT` (a token is good for nothing else signed with
  ``SECRET_KEY``), with the time it was made.  It is valid
  ``WS4REDIS_TOKEN_MAX_AGE`` seconds (default :data:`DEFAULT_MAX_AGE`, 60):
  it is only needed to open a socket, so a client asks for a new one before
  each (re)connection.  An open socket is not closed when its token expires.
* A handshake **with** a ``token`` query parameter that is expired, forged,
  altered, made for a user that no longer exists or is inactive, is refused
  with **403** (1008 where the server has already upgraded): a client that
  presented a credential learns that it failed, instead of silently getting
  an anonymous socket.  Such a socket has no session (``request.session`` is
  ``None``): no session channel.
* A handshake **without** one is handled as usual, from the session cookie
  (:func:`ws4redis_mw.audience.process_request`), so the same setting serves
  browsers and other clients.
* The token travels in the query string, which proxies may log: that is why
  it is short-lived.  It is never logged by ws4redis_mw.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Optional

from . import audience

__all__ = ["SALT", "DEFAULT_MAX_AGE", "QUERY_PARAMETER", "make_token", "user_for_token", "process_request"]

logger = logging.getLogger("ws4redis_mw.tokens")

#: The ``django.core.signing`` salt of websocket tokens.
SALT = "ws4redis_mw.tokens"
#: Seconds a token is valid unless ``WS4REDIS_TOKEN_MAX_AGE`` says otherwise.
DEFAULT_MAX_AGE = 60.0
#: The query parameter that carries the token.
QUERY_PARAMETER = "token"


class InvalidToken(Exception):
    """The token is expired, forged or altered, or names no active user."""


def max_age() -> float:
    """``WS4REDIS_TOKEN_MAX_AGE`` in seconds, from Django's settings."""
    from django.conf import settings as django_settings

    return float(getattr(django_settings, "WS4REDIS_TOKEN_MAX_AGE", DEFAULT_MAX_AGE))


def make_token(user: Any) -> str:
    """A token that opens websockets as ``user`` for ``WS4REDIS_TOKEN_MAX_AGE`` seconds from now."""
    from django.core import signing

    token: str = signing.dumps(str(user.pk), salt=SALT, compress=False)
    return token


def user_for_token(token: str, max_age_seconds: Optional[float] = None) -> Any:
    """The active user ``token`` was made for; raises :class:`InvalidToken` otherwise.

    ``max_age_seconds`` defaults to ``WS4REDIS_TOKEN_MAX_AGE``.
    """
    from django.contrib.auth import get_user_model
    from django.core import signing

    try:
        pk = signing.loads(token, salt=SALT, max_age=max_age() if max_age_seconds is None else max_age_seconds)
    except signing.SignatureExpired:
        raise InvalidToken("expired token") from None
    except signing.BadSignature:
        raise InvalidToken("invalid token") from None
    model = get_user_model()
    try:
        user = model._default_manager.get(pk=pk)
    except (model.DoesNotExist, ValueError, TypeError):
        raise InvalidToken("token for an unknown user") from None
    if not getattr(user, "is_active", True):
        raise InvalidToken("token for an inactive user")
    return user


def process_request(request: Any) -> None:
    """``WS4REDIS_PROCESS_REQUEST``: the user of the ``token`` parameter, else the session cookie's.

    Raises :class:`~ws4redis_mw.handshake.Refusal` (403) for a bad token.
    """
    token = request.GET.get(QUERY_PARAMETER)
    if token is None:
        audience.process_request(request)
        return
    from .handshake import Refusal

    try:
        user = user_for_token(token)
    except InvalidToken as exc:
        raise Refusal(HTTPStatus.FORBIDDEN, str(exc)) from None
    request.session = None
    request.user = user
