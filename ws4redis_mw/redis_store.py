"""Messages, audiences and the publishing side of a channel (ws4redis's API).

:class:`RedisMessage` and :data:`SELF` keep the meaning they have in
django-websocket-redis.  :class:`RedisStore` turns an audience
(``broadcast``, ``users``, ``groups``, ``sessions``, where :data:`SELF` stands
for the requesting user, their groups or their session) into channel names,
and publishes a message to them, keeping it for ``expire`` seconds, in one
round trip to Redis; a channel with history (``WS4REDIS_HISTORY``) is
published by :data:`ws4redis_mw.history.PUBLISH_SCRIPT`, which also gives
the publication its offset.  On a ``redis.cluster.RedisCluster`` client
(``WS4REDIS_CONNECTION`` names a cluster) publications use ``SPUBLISH``
and redis-py's cluster pipeline sends each command to its slot's master.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Iterable, List, Optional, Set

from redis.cluster import RedisCluster

from . import channels as _channels
from . import history
from .groups import GROUPS_SESSION_KEY, lifetime, user_groups

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["RedisMessage", "SELF", "RedisStore", "GROUPS_SESSION_KEY"]


class _SelfType:
    """Stands for the requesting user, their groups or their session."""

    def __repr__(self) -> str:
        return "SELF"


SELF = _SelfType()


class RedisMessage(bytes):
    """A message as bytes; a ``str`` is encoded as UTF-8.

    As in ws4redis, the heartbeat string and a Redis reply that is not a
    ``message`` give a false value (``None``), so ``if RedisMessage(x):`` filters
    them out.
    """

    def __new__(cls, value: Any) -> Optional["RedisMessage"]:  # type: ignore[misc]
        heartbeat = _heartbeat_bytes()
        if isinstance(value, list):
            if len(value) >= 3 and value[0] in (b"message", "message"):
                value = value[2]
            else:
                return None
        if isinstance(value, str):
            value = value.encode("utf-8")
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"a RedisMessage is made of str or bytes, not {type(value).__name__}")
        if heartbeat is not None and value == heartbeat:
            return None
        return super().__new__(cls, value)


def _heartbeat_bytes() -> Optional[bytes]:
    from .settings import process_settings

    try:
        heartbeat = process_settings().heartbeat
    except Exception:  # settings not configured: no heartbeat to filter
        return None
    return heartbeat.encode("utf-8") if heartbeat else None


def _is_authenticated(request: Any) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)


def _replace_self(members: Iterable[Any], own: List[str]) -> List[str]:
    result: List[str] = []
    for member in members:
        if member is SELF:
            result.extend(own)
        else:
            result.append(str(member))
    return result


def own_users(request: Any) -> List[str]:
    """The requesting user's name as a one-element list, or ``[]`` if anonymous."""
    return [request.user.get_username()] if _is_authenticated(request) else []


def own_groups(request: Any) -> List[str]:
    """The user's group names, or ``[]`` if anonymous: kept in the session at login,
    read again once older than ``WS4REDIS_GROUPS_LIFETIME`` (:mod:`ws4redis_mw.groups`)."""
    if not _is_authenticated(request) or not hasattr(request.user, "groups"):
        return []
    return user_groups(getattr(request, "session", None), request.user, lifetime())


def own_sessions(request: Any) -> List[str]:
    """The request's session key as a one-element list, or ``[]``."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None) if session is not None else None
    return [key] if key else []


_OWN = {"user": own_users, "group": own_groups, "session": own_sessions}


class RedisStore:
    """Publishes to a set of channels; the base of the publisher and subscriber."""

    def __init__(self, connection: Any, *, prefix: Optional[str] = None, expire: Optional[int] = None,
                 settings: Optional["Settings"] = None):
        from .settings import process_settings

        if settings is None:
            settings = process_settings()
        self.settings = settings
        self._connection = connection
        self._sharded = isinstance(connection, RedisCluster)
        self._prefix = settings.prefix if prefix is None else prefix
        self._expire = settings.expire if expire is None else expire
        self._publishers: Set[str] = set()

    @staticmethod
    def get_prefix() -> str:
        """ws4redis's ``RedisStore.get_prefix()``: the key prefix of the process's settings."""
        from .settings import process_settings

        return _channels.key_prefix(process_settings().prefix)

    def publish_message(self, message: RedisMessage, expire: Optional[int] = None) -> None:
        """Publish ``message`` to this store's channels and keep it ``expire`` seconds, in one round trip.

        ``expire`` defaults to ``WS4REDIS_EXPIRE``; 0 keeps nothing.
        """
        self._publish(message, expire, transaction=False)

    def pipeline_publish_message(self, message: RedisMessage, expire: Optional[int] = None, transaction: bool = True) -> None:
        """ws4redis' pipelined :meth:`publish_message`: the same one round trip, optionally as one transaction.

        ``transaction=True`` (ws4redis' default) wraps the commands in
        ``MULTI``/``EXEC``: Redis runs them together, no other client's command
        in between (it does not undo one that fails).  Under Redis Cluster,
        where the channels live on several masters, it is ignored.
        """
        self._publish(message, expire, transaction=transaction and not self._sharded)

    def _publish(self, message: RedisMessage, expire: Optional[int], transaction: bool) -> None:
        if expire is None:
            expire = self._expire
        if message is None:
            # RedisMessage(text) is None when text is the heartbeat (as in ws4redis):
            # clients take that string for a heartbeat and drop it, so it cannot be sent.
            raise ValueError("nothing to publish: RedisMessage() gave None, because the text equals WS4REDIS_HEARTBEAT "
                             "(clients drop it as a heartbeat) or is a Redis reply that is no message")
        if not isinstance(message, RedisMessage):
            raise ValueError("message object is not of type RedisMessage")
        if not self._publishers:
            return
        policy = history.policy_for(self.settings)
        pipe = self._connection.pipeline(transaction=transaction)
        for channel in self._publishers:
            config = policy.for_channel(channel) if policy.enabled else None
            if config is not None:
                pipe.execute_command("EVAL", history.PUBLISH_SCRIPT,
                                     *history.publish_args(channel, self._prefix, config, bytes(message), expire, self._sharded))
                continue
            if self._sharded:
                pipe.execute_command("SPUBLISH", channel, message)
            else:
                pipe.publish(channel, message)
            if expire > 0:
                pipe.set(channel, message, ex=expire)
        pipe.execute()

    def _get_message_channels(
        self,
        request: Any = None,
        facility: str = "{facility}",
        broadcast: bool = False,
        groups: Any = (),
        users: Any = (),
        sessions: Any = (),
    ) -> List[str]:
        """The channel names of ``facility`` for the given audience."""
        if facility != "{facility}":
            _channels.validate_facility(facility)
        names: List[str] = []
        if broadcast is True:
            names.append(_channels.channel_name(self._prefix, "broadcast", facility))
        for audience, members in (("group", groups), ("user", users), ("session", sessions)):
            names.extend(_channels.channel_names(self._prefix, audience, facility, self._members(audience, members, request)))
        return names

    @staticmethod
    def _members(audience: str, members: Any, request: Any) -> List[str]:
        if isinstance(members, (list, tuple, set, frozenset)):
            own = _OWN[audience](request) if SELF in members else []
            return _replace_self(members, own)
        if members is True:
            warnings.warn(f"Wrap {audience}s=True into a list or tuple using SELF", DeprecationWarning, stacklevel=4)
            return _OWN[audience](request)
        if isinstance(members, str):
            warnings.warn(f"Wrap a single {audience} into a list or tuple", DeprecationWarning, stacklevel=4)
            return [members]
        if members is False or members is None:
            return []
        raise ValueError(f"Argument `{audience}s` must be a list or tuple")
