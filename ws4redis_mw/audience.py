"""Who is asking: the Django request behind a websocket handshake.

The websocket path builds a Django ``WSGIRequest`` from the handshake's
environ and fills ``request.session`` and ``request.user`` from the session
cookie, as ws4redis does (``WS4REDIS_PROCESS_REQUEST`` may replace that).
Group names come from the session, where :mod:`ws4redis_mw.apps` stores them
at login, so no group query runs here.  ``WS4REDIS_ALLOWED_CHANNELS`` then
filters the requested flags.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any, List, Optional

from .settings import Settings, import_string_or_callable

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["django_request", "process_request", "username", "session_key", "BOUND_SESSION_ATTRIBUTE",
           "EXPIRES_ATTRIBUTE", "RENEW_ATTRIBUTE", "allowed_flags"]

#: The request attribute that names the session a socket without a session
#: cookie belongs to (a token's, :mod:`ws4redis_mw.tokens`): it gets no session
#: channel, but ends with that session.
BOUND_SESSION_ATTRIBUTE = "ws4redis_bound_session"
#: The request attribute holding when the socket's credential expires (a
#: ``time.time()`` value; a token's, :mod:`ws4redis_mw.tokens`): the socket is
#: closed with 4002 then, unless the client renews it.  Absent: no expiry.
EXPIRES_ATTRIBUTE = "ws4redis_credential_expires"
#: The request attribute holding the callable that checks a renewal the client
#: sends (see :data:`ws4redis_mw.bridge.Renewer`).
RENEW_ATTRIBUTE = "ws4redis_credential_renew"


def process_request(request: Any) -> None:
    """Set ``request.session`` (``None`` without a valid session) and ``request.user``."""
    # Imported here: the middleware module is imported before Django is set up.
    from django.conf import settings
    from django.contrib.auth import get_user
    from django.contrib.auth.models import AnonymousUser
    from django.utils.functional import SimpleLazyObject

    request.session = None
    request.user = AnonymousUser()
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if session_key:
        session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        # Loading drops a key the session store does not know, so a made-up
        # cookie cannot name someone else's session channel.
        session.keys()
        if session.session_key:
            request.session = session
            request.user = SimpleLazyObject(lambda: get_user(request))


def django_request(environ: WSGIEnvironment, settings: Settings) -> Any:
    """A Django ``WSGIRequest`` for the handshake, with session and user set."""
    from django.core.handlers.wsgi import WSGIRequest

    request = WSGIRequest(environ)
    # ALLOWED_HOSTS, as Django checks every request that asks for the host: a
    # page of a DNS-rebinding name passes the Origin check (its Origin and
    # Host agree) and must not reach the site's channels. DisallowedHost.
    request.get_host()
    hook = import_string_or_callable(settings.process_request) or process_request
    hook(request)
    return request


def session_key(request: Any) -> Optional[str]:
    """The key of the session the socket ends with, or ``None``."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None) if session is not None else None
    return key if key is not None else getattr(request, BOUND_SESSION_ATTRIBUTE, None)


def username(request: Any) -> Optional[str]:
    """The authenticated user's name, or ``None`` for an anonymous socket."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return str(user.get_username())


def allowed_flags(request: Any, flags: List[str], settings: Settings) -> List[str]:
    """``flags`` as filtered by ``WS4REDIS_ALLOWED_CHANNELS`` (all of them when unset)."""
    hook = import_string_or_callable(settings.allowed_channels)
    return list(hook(request, flags)) if hook is not None else list(flags)
