"""The requesting user's group names, trusted for a short lifetime, then read again.

Rules of this module:

* At login (:mod:`ws4redis_mw.apps`' ``user_logged_in`` handler) the user's
  group names are stored in the session under :data:`GROUPS_SESSION_KEY`,
  with the time they were read under :data:`GROUPS_READ_AT_SESSION_KEY`.
* A websocket handshake uses names younger than ``WS4REDIS_GROUPS_LIFETIME``
  seconds (default 60): those of the session, or else those this process last
  read for the user (a bounded table, :data:`MAX_USERS` users, oldest
  dropped first).  Only when neither is young enough are they read from the
  database: **one query**, at most once per user, process and lifetime.
  The session is never written from a handshake: a concurrent write by a
  view would be lost.
* A change of ``User.groups`` in this process (``m2m_changed``) makes the
  names read before it stale: for that user, or for every user when a
  group's members are cleared (the signal does not say who they were), so
  each of them costs one query at their next handshake.
* So a user removed from (or added to) a group loses (or gets) the group's
  channel on the sockets they open at most ``WS4REDIS_GROUPS_LIFETIME``
  seconds later, without a new login, and at once in the process where
  ``user.groups`` was changed.  Sockets already open keep the channels they
  were given.  ``0`` reads the groups on every handshake; ``None`` trusts
  the session's names until this process sees a change (ws4redis's
  behaviour, but for that: changes take effect at the next login).
"""

from __future__ import annotations

import collections
import time
from typing import Any, List, Optional, Tuple

__all__ = [
    "GROUPS_SESSION_KEY", "GROUPS_READ_AT_SESSION_KEY", "DEFAULT_LIFETIME", "MAX_USERS",
    "lifetime", "store_groups", "user_groups", "forget_user", "groups_changed",
]

#: The session key of the user's group names (ws4redis's key).
GROUPS_SESSION_KEY = "ws4redis:memberof"
#: The session key of the time (seconds since the epoch) they were read.
GROUPS_READ_AT_SESSION_KEY = "ws4redis:memberof_at"
#: Seconds group names are trusted unless ``WS4REDIS_GROUPS_LIFETIME`` says otherwise.
DEFAULT_LIFETIME = 60.0
#: Users whose group names a process keeps (about 100 bytes each plus the names).
MAX_USERS = 10_000

# user pk -> (time, names): names read then, or None: user.groups changed then,
# names read before are stale.  The least recently written first.
_read: "collections.OrderedDict[Any, Tuple[float, Optional[List[str]]]]" = collections.OrderedDict()
# Names read before this time are stale for every user (a group's members were cleared).
_all_changed_at = 0.0


def lifetime() -> Optional[float]:
    """``WS4REDIS_GROUPS_LIFETIME``: seconds the group names kept in the session (or last read by the process) are trusted by a handshake.

    Older, they are read again (one query, then kept per process for as
    long).  ``0``: read on every handshake; ``None``: until the next login
    (as ws4redis did).  Sockets already open keep their channels.
    """
    from django.conf import settings as django_settings

    value = getattr(django_settings, "WS4REDIS_GROUPS_LIFETIME", DEFAULT_LIFETIME)
    return None if value is None else float(value)


def store_groups(session: Any, user: Any) -> List[str]:
    """Read ``user``'s group names (one query) and keep them in ``session`` with the time; return them."""
    names = [group.name for group in user.groups.all()]
    session[GROUPS_SESSION_KEY] = names
    session[GROUPS_READ_AT_SESSION_KEY] = time.time()
    return names


def user_groups(session: Any, user: Any, max_age: Optional[float], now: Optional[float] = None) -> List[str]:
    """``user``'s group names no older than ``max_age`` seconds (``None``: the session's, however old)."""
    now = time.time() if now is None else now
    entry = _read.get(user.pk)
    # What this process learnt about the user (names read, or a change)
    # supersedes names the session got earlier.
    superseded_before = max(_all_changed_at, entry[0] if entry is not None else 0.0)
    names = session.get(GROUPS_SESSION_KEY) if session is not None else None
    read_at = session.get(GROUPS_READ_AT_SESSION_KEY) if session is not None else None
    if names is not None and _trusted(read_at, now, max_age, superseded_before, missing_ok=max_age is None and not superseded_before):
        return list(names)
    if entry is not None and entry[1] is not None and _trusted(entry[0], now, max_age, _all_changed_at):
        return list(entry[1])
    names = [group.name for group in user.groups.all()]
    _remember(user.pk, now, names)
    return list(names)


def forget_user(pk: Any, now: Optional[float] = None) -> None:
    """``user.groups`` of the user ``pk`` changed: names read before now are stale in this process."""
    _remember(pk, time.time() if now is None else now, None)


def _remember(pk: Any, at: float, names: Optional[List[str]]) -> None:
    _read[pk] = (at, names)
    _read.move_to_end(pk)
    while len(_read) > MAX_USERS:
        _read.popitem(last=False)


def _trusted(read_at: Any, now: float, max_age: Optional[float], changed_at: float, missing_ok: bool = False) -> bool:
    if not isinstance(read_at, (int, float)):
        return missing_ok  # stored by an older version, without a time
    if read_at < changed_at:
        return False
    return max_age is None or 0 <= now - read_at < max_age


def groups_changed(sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any) -> None:
    """``m2m_changed`` of ``User.groups``: names read before are stale, in this process."""
    global _all_changed_at
    if not action.startswith("post_"):
        return
    if not reverse:  # user.groups.add(...): instance is the user
        forget_user(instance.pk)
    elif pk_set:  # group.user_set.remove(...): pk_set holds the users
        for pk in pk_set:
            forget_user(pk)
    else:  # group.user_set.clear(): who was in it is not known any more
        _all_changed_at = time.time()
