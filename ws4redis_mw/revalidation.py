"""Open sockets checked again, per worker, until their session ends.

A logout sends a disconnect order (:mod:`ws4redis_mw.control`), which closes
the session's sockets at once.  What sends no order is noticed here: a
session that expired or was deleted (``clearsessions``, a logout while Redis
was away), a user that was deactivated or deleted, a password changed
elsewhere (Django's session auth hash no longer matches).

Rules of this module:

* Every ``WS4REDIS_GROUPS_LIFETIME`` seconds (60 by default; at least one
  second; ``None`` is 60 here), one greenlet per hub looks at the sessions
  of that worker's open sockets, each distinct session once: one session
  load and, for a logged-in socket, Django's own ``get_user`` (which checks
  the user is active and the session auth hash, and, as on any request,
  flushes a session whose hash no longer matches).  A socket whose session
  is gone, or whose user is no longer that session's user, is closed with
  :data:`~ws4redis_mw.control.SESSION_ENDED`.
* Sockets without a session (no cookie, a token made without one) are not
  checked: nothing says they ended.
* The checks yield to other greenlets between sessions, and close the
  database connections they opened after each pass (under gevent a
  connection belongs to the greenlet that opened it).
* Session keys are credentials: they are never logged.
"""

from __future__ import annotations

import logging
import types
from importlib import import_module
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import gevent

from . import control, groups

if TYPE_CHECKING:
    from .hub import Hub, Listener

__all__ = ["interval", "watch", "check_once"]

logger = logging.getLogger("ws4redis_mw.revalidation")

_watchers: Dict[int, "gevent.Greenlet[..., None]"] = {}  # id(hub) -> its greenlet


def interval() -> float:
    """Seconds between two checks of a socket's session."""
    lifetime = groups.lifetime()
    return groups.DEFAULT_LIFETIME if lifetime is None else max(lifetime, 1.0)


def watch(hub: "Hub") -> None:
    """Make sure ``hub``'s sockets are checked every :func:`interval` seconds."""
    watcher = _watchers.get(id(hub))
    if watcher is None or watcher.dead:
        _watchers[id(hub)] = gevent.spawn(_check_forever, hub)


def _check_forever(hub: "Hub") -> None:
    from .hub import process_hubs

    while True:
        gevent.sleep(interval())
        if hub not in process_hubs():  # stopped and discarded (tests, shutdown)
            _watchers.pop(id(hub), None)
            return
        try:
            check_once(hub)
        except Exception:  # the database is away: try again next time
            logger.exception("checking the sessions of open sockets failed")


def check_once(hub: "Hub") -> int:
    """Close each socket of ``hub`` whose session ended; how many."""
    from django.db import connections

    by_session: Dict[str, List[Tuple["Listener", control.Identity]]] = {}
    for listener, identity in hub.identities():
        if identity.session is not None:
            by_session.setdefault(identity.session, []).append((listener, identity))
    closed = 0
    try:
        for key, sockets in by_session.items():
            exists, user = session_state(key)
            for listener, identity in sockets:
                if not exists or (identity.user is not None and identity.user != user):
                    listener.server_close(control.SESSION_ENDED, "session ended")  # type: ignore[arg-type]
                    closed += 1
            gevent.sleep(0)
    finally:
        connections.close_all()
    if closed:
        logger.info("closing %d socket(s) whose session ended (expired, logged out, user deactivated or password changed)", closed)
    return closed


def session_state(key: str) -> Tuple[bool, Optional[str]]:
    """Whether the session ``key`` still exists, and the name of its valid user (``None``: anonymous)."""
    from django.conf import settings
    from django.contrib.auth import get_user

    session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    session.keys()  # loads it: an expired or unknown key loses its key
    if not session.session_key:
        return False, None
    user = get_user(types.SimpleNamespace(session=session))  # only .session is read
    return True, user.get_username() if user.is_authenticated else None
