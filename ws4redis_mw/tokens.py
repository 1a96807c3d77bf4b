"""Short-lived signed tokens: websockets for clients that have no session cookie.

A view of the site (where the client is authenticated by any means Django
knows) hands out ``make_token(request.user)``; the client opens
``ws://host/ws/facility?subscribe-user&token=<token>``.  With
``WS4REDIS_PROCESS_REQUEST = "ws4redis_mw.tokens.process_request"`` the
handshake then runs as that user.

Rules of this module:

* A token is ``django.core.signing.dumps`` of the user's primary key, the
  user's session auth hash and, when made from a request, its session key,
  salted with :data:`SALT` (a token is good for nothing else signed with
  ``SECRET_KEY``), with the time it was made.  It is valid
  ``WS4REDIS_TOKEN_MAX_AGE`` seconds (default :data:`DEFAULT_MAX_AGE`, 60):
  it is only needed to open a socket, so a client asks for a new one before
  each (re)connection.
* A token is **bound to the session** it was made in (``make_token(request)``):
  after that session's logout (or expiry) it is refused, and a socket it
  opened ends with the session like a cookie's socket does (closed by the
  logout's disconnect order, checked again by
  :mod:`ws4redis_mw.revalidation`), though it gets no session channel.  A
  changed password refuses every token made before (the session auth hash
  differs).  ``make_token(user)``, without a request, makes a token bound to
  no session: refused after a password change, not after a logout.
* A handshake **with** a ``token`` query parameter that is expired, forged,
  altered, made for a user that no longer exists or is inactive, is refused
  with **403** (1008 where the server has already upgraded): a client that
  presented a credential learns that it failed, instead of silently getting
  an anonymous socket.  Such a socket has no session (``request.session`` is
  ``None``): no session channel.
* An open token socket is **closed at the token's expiry** (made +
  ``WS4REDIS_TOKEN_MAX_AGE``) with 4002 (``CREDENTIAL_EXPIRED``), unless the
  client renews it first by sending a fresh token as the text message
  ``{"type": "token", "token": "<token>"}`` (never published): the socket
  then lives until the new token's expiry.  A renewal is checked like a
  handshake's token and must name the same user and session; one of another
  user or session, a forged or expired one, closes with 1008; one refused
  because the user or session is gone (logout, password change, inactive
  user) closes with 4001.  A client renews well before expiry (at half the
  max age, say), with a token from the same view that gave the first.
* A handshake **without** one is handled as usual, from the session cookie
  (:func:`ws4redis_mw.audience.process_request`), so the same setting serves
  browsers and other clients.
* The token travels in the query string, which proxies may log: that is why
  it is short-lived.  It is never logged by ws4redis_mw.
"""

from __future__ import annotations

import logging
import time
from http import HTTPStatus
from typing import Any, Optional, Tuple, Union

from . import audience
from .frames import CloseCode

__all__ = ["SALT", "DEFAULT_MAX_AGE", "QUERY_PARAMETER", "make_token", "user_for_token", "process_request", "renew"]

logger = logging.getLogger("ws4redis_mw.tokens")

#: The ``django.core.signing`` salt of websocket tokens.
SALT = "ws4redis_mw.tokens"
#: Seconds a token is valid unless ``WS4REDIS_TOKEN_MAX_AGE`` says otherwise.
DEFAULT_MAX_AGE = 60.0
#: The query parameter that carries the token.
QUERY_PARAMETER = "token"


class InvalidToken(Exception):
    """The token is expired, forged or altered, or names no active user."""

    def __init__(self, reason: str, gone: bool = False):
        super().__init__(reason)
        #: The user or the session is gone (not the token's own fault): a socket ends with 4001.
        self.gone = gone


def max_age() -> float:
    """``WS4REDIS_TOKEN_MAX_AGE``: seconds a token of ``ws4redis_mw.tokens.make_token`` opens sockets.

    It applies with ``WS4REDIS_PROCESS_REQUEST = "ws4redis_mw.tokens.process_request"``.
    """
    from django.conf import settings as django_settings

    return float(getattr(django_settings, "WS4REDIS_TOKEN_MAX_AGE", DEFAULT_MAX_AGE))


def make_token(request_or_user: Any) -> str:
    """A token that opens websockets as the request's user (bound to its session), or as a user, for ``WS4REDIS_TOKEN_MAX_AGE`` seconds."""
    from django.core import signing

    user = getattr(request_or_user, "user", request_or_user)
    session = getattr(request_or_user, "session", None)
    claims = {"u": str(user.pk), "h": _auth_hash(user), "s": getattr(session, "session_key", None)}
    token: str = signing.dumps(claims, salt=SALT, compress=False)
    return token


def _auth_hash(user: Any) -> str:
    get_hash = getattr(user, "get_session_auth_hash", None)  # a custom user model may have none
    return get_hash()[:16] if get_hash is not None else ""


def user_for_token(token: str, max_age_seconds: Optional[float] = None) -> Any:
    """The active user ``token`` was made for; raises :class:`InvalidToken` otherwise.

    ``max_age_seconds`` defaults to ``WS4REDIS_TOKEN_MAX_AGE``.
    """
    return _verify(token, max_age_seconds)[0]


def _verify(token: str, max_age_seconds: Optional[float] = None) -> Tuple[Any, Optional[str], float]:
    """The user ``token`` was made for, the key of the session it is bound to (``None``: none), and when (``time.time()``) it expires."""
    from django.contrib.auth import get_user_model
    from django.core import signing

    from .revalidation import session_state

    try:
        claims = signing.loads(token, salt=SALT, max_age=max_age() if max_age_seconds is None else max_age_seconds)
    except signing.SignatureExpired:
        raise InvalidToken("expired token") from None
    except signing.BadSignature:
        raise InvalidToken("invalid token") from None
    if not isinstance(claims, dict) or not isinstance(claims.get("u"), str):
        raise InvalidToken("invalid token")  # signed by us, but in an older form
    model = get_user_model()
    try:
        user = model._default_manager.get(pk=claims["u"])
    except (model.DoesNotExist, ValueError, TypeError):
        raise InvalidToken("token for an unknown user", gone=True) from None
    if not getattr(user, "is_active", True):
        raise InvalidToken("token for an inactive user", gone=True)
    if claims.get("h") != _auth_hash(user):
        raise InvalidToken("token made before the user's password changed", gone=True)
    session = claims.get("s")
    if session is not None and session_state(str(session)) != (True, user.get_username()):
        raise InvalidToken("token of a session that ended (logout or expiry)", gone=True)
    # signing.dumps() wrote "<claims>:<base62 time made>:<signature>"; the signature was checked.
    made = signing.b62_decode(token.rsplit(signing.Signer().sep, 2)[-2])
    return user, session, made + (max_age() if max_age_seconds is None else max_age_seconds)


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
        user, session, expires = _verify(token)
    except InvalidToken as exc:
        raise Refusal(HTTPStatus.FORBIDDEN, str(exc)) from None
    request.session = None
    request.user = user
    setattr(request, audience.BOUND_SESSION_ATTRIBUTE, session)  # the socket ends with it
    setattr(request, audience.EXPIRES_ATTRIBUTE, expires)  # and at the token's expiry, unless renewed
    setattr(request, audience.RENEW_ATTRIBUTE, lambda fresh: renew(fresh, str(user.pk), session))


def renew(token: str, user_pk: str, session: Optional[str]) -> Union[float, Tuple[CloseCode, str]]:
    """Check a token a socket of ``user_pk`` (bound to ``session``) sent to renew itself.

    Returns the seconds it is good for, or the close code and reason to end the socket with.
    """
    from django.db import connections

    try:
        user, bound, expires = _verify(token)
    except InvalidToken as exc:
        return (CloseCode.SESSION_ENDED if exc.gone else CloseCode.POLICY_VIOLATION, str(exc))
    finally:
        connections.close_all()  # this greenlet's: the socket may live for hours
    if str(user.pk) != user_pk or bound != session:
        return (CloseCode.POLICY_VIOLATION, "token for another user or session")
    return max(0.0, expires - time.time())
