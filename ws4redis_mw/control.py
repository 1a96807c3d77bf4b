"""Orders to close sockets, sent through Redis to every worker of the site.

``ws4redis_mw.disconnect(user="alice")`` from any Django code (a view, the
shell, a task) closes Alice's open sockets in every process that serves the
site, within the time a Redis message takes; Django's ``logout()`` sends one
for the session it ends (:mod:`ws4redis_mw.apps`).

Rules of this module:

* An order names who is to be closed by one or more of: the user's name,
  the session key, the facility; a socket is closed when it matches **every**
  name the order gives, compared whole (``alice`` never closes ``alice2``,
  ``a:{b}`` is no pattern).  An order that names nobody is refused
  (:class:`ValueError`): closing every socket of the site is a restart, not
  an order.
* Orders travel on one Redis channel per site, :func:`control_channel`:
  ``<prefix:>control``.  Socket channels always carry an audience
  (``broadcast:``, ``user:``, ...), so no client can subscribe or publish to
  it, and another ``WS4REDIS_PREFIX`` is another site.  Every hub subscribes
  it for as long as it runs (:class:`~ws4redis_mw.registry.Registry`'s
  pinned channels), so an order reaches every worker that has sockets.
* The close code is :data:`SESSION_ENDED` (4001) unless the caller names
  another: the JS client does not reconnect after it until the page is
  loaded again (the user has to log in again, or was banned).  Any code a
  server may send is allowed (1000, 1001, 1008, 1011, 1013, 3000-4999).
* This module's :class:`Order` is free of I/O; :func:`disconnect` is the one
  call that talks to Redis, through the publisher's client.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any, Dict, Optional

from .channels import key_prefix
from .frames import CloseCode

__all__ = ["SESSION_ENDED", "Identity", "Order", "control_channel", "disconnect"]

logger = logging.getLogger("ws4redis_mw.control")

#: The close code of a socket whose session ended (logout, an expired
#: session, a deactivated user, a changed password) or that was closed by
#: :func:`disconnect`: "do not reconnect until the page is loaded again".
SESSION_ENDED = int(CloseCode.SESSION_ENDED)

#: Close codes an order may ask for: those a server may send.
_SERVER_CODES = frozenset((1000, 1001, 1008, 1011, 1013))
#: A close frame's reason is at most 123 bytes of UTF-8 (RFC 6455 5.5.1).
MAX_REASON_BYTES = 123


def control_channel(prefix: Optional[str]) -> str:
    """The Redis channel orders to this site's workers travel on."""
    return f"{key_prefix(prefix)}control"


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a socket belongs to, as orders name it."""

    user: Optional[str]  # the logged-in user's name; None: anonymous
    session: Optional[str]  # the session key (a token's bound session); None: no session
    facility: str


@dataclasses.dataclass(frozen=True)
class Order:
    """Close the sockets that match every name given, with ``code`` and ``reason``."""

    user: Optional[str] = None
    session: Optional[str] = None
    facility: Optional[str] = None
    code: int = SESSION_ENDED
    reason: str = "session ended"

    def __post_init__(self) -> None:
        if self.user is None and self.session is None and self.facility is None:
            raise ValueError("a disconnect order names at least one of user, session and facility")
        if not (self.code in _SERVER_CODES or 3000 <= self.code <= 4999):
            raise ValueError(f"{self.code} is not a close code a server may send (1000, 1001, 1008, 1011, 1013, 3000-4999)")
        if len(self.reason.encode("utf-8")) > MAX_REASON_BYTES:
            raise ValueError(f"a close reason is at most {MAX_REASON_BYTES} bytes of UTF-8")

    def __str__(self) -> str:
        # For log lines: a session key is a credential, never written out.
        names = [f"user={self.user!r}"] if self.user is not None else []
        names += ["session=<given>"] if self.session is not None else []
        names += [f"facility={self.facility!r}"] if self.facility is not None else []
        return f"({', '.join(names)}; code {self.code})"

    def matches(self, identity: Identity) -> bool:
        return ((self.user is None or self.user == identity.user)
                and (self.session is None or self.session == identity.session)
                and (self.facility is None or self.facility == identity.facility))

    def encode(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False).encode("utf-8")

    @classmethod
    def decode(cls, payload: bytes) -> Optional["Order"]:
        """The order ``payload`` carries, or ``None`` if it is not one (logged by the caller)."""
        try:
            fields: Dict[str, Any] = json.loads(payload)
            if not isinstance(fields, dict) or set(fields) - {f.name for f in dataclasses.fields(cls)}:
                return None
            order = cls(**fields)
        except (ValueError, TypeError):  # not JSON, not UTF-8, a wrong type, names nobody
            return None
        names = (order.user, order.session, order.facility)
        if not all(name is None or isinstance(name, str) for name in names) or not isinstance(order.reason, str) \
                or type(order.code) is not int:
            return None
        return order


def disconnect(user: Any = None, session: Any = None, facility: Optional[str] = None, *,
               code: int = SESSION_ENDED, reason: str = "session ended") -> int:
    """Close every socket of ``user``, ``session`` and ``facility`` (those given) in every worker.

    ``user`` is a user object or a username, ``session`` a session object
    (``request.session``) or a session key.  Returns the number of processes
    that received the order (Redis' ``PUBLISH`` reply; each closes its
    matching sockets).  Raises :class:`ValueError` for an order that names
    nobody or a bad code or reason, and
    :class:`~ws4redis_mw.RedisUnavailable` if Redis cannot be reached within
    ``WS4REDIS_PUBLISHER_TIMEOUT``.
    """
    from redis.cluster import RedisCluster

    from .connection import get_client
    from .errors import RedisUnavailable
    from .publisher import UNAVAILABLE, reread_slot_map
    from .settings import process_settings

    if user is not None and not isinstance(user, str):
        user = user.get_username()
    if session is not None and not isinstance(session, str):
        session = session.session_key
        if session is None:
            raise ValueError("that session has no key (it was never saved): it has no sockets")
    order = Order(user=user, session=session, facility=facility, code=code, reason=reason)
    settings = process_settings()
    client = get_client(settings.connection, settings.publisher_timeout)
    publish = client.spublish if isinstance(client, RedisCluster) else client.publish
    try:
        receivers = int(publish(control_channel(settings.prefix), order.encode()))
    except UNAVAILABLE as exc:
        reread_slot_map(client)
        raise RedisUnavailable(f"sending a disconnect order to Redis failed: {exc}") from exc
    logger.info("disconnect order %s sent to %d process(es)", order, receivers)
    return receivers
