"""The publisher Django code calls: ``RedisPublisher(facility=..., broadcast=True)``.

Same API as ws4redis.publisher: the constructor names an audience, and
:meth:`RedisPublisher.publish_message` sends a :class:`RedisMessage` to it;
:meth:`RedisPublisher.fetch_message` reads back the kept message of a channel.
It uses the process's ordinary redis-py client, so it works from any view,
thread or task.
"""

from __future__ import annotations

from typing import Any, Optional

from .channels import channel_name, validate_facility
from .connection import get_client
from .redis_store import RedisStore, own_groups, own_sessions, own_users
from .settings import process_settings

__all__ = ["RedisPublisher"]


class RedisPublisher(RedisStore):
    """Publish to ``facility`` for ``broadcast``, ``users``, ``groups`` and ``sessions``.

    Each audience is a list or tuple of names in which :data:`SELF` stands for
    the one of ``request``; ``broadcast`` is a bool.  ``expire`` overrides
    ``WS4REDIS_EXPIRE`` for this publisher.
    """

    def __init__(self, **kwargs: Any):
        settings = process_settings()  # read once per process
        super().__init__(get_client(settings.connection), expire=kwargs.pop("expire", None), settings=settings)
        self._publishers = set(self._get_message_channels(**kwargs))

    def fetch_message(self, request: Any, facility: str, audience: str = "any") -> Optional[bytes]:
        """The kept message of ``facility`` for ``request``'s session, user, groups or broadcast.

        With ``audience='any'`` they are tried in that order and the first kept
        message is returned; ``None`` if there is none.
        """
        validate_facility(facility)
        owners = (("session", own_sessions), ("user", own_users), ("group", own_groups))
        names = [
            channel_name(self._prefix, kind, facility, member)
            for kind, own in owners
            if audience in (kind, "any")
            for member in own(request)
        ]
        if audience in ("broadcast", "any"):
            names.append(channel_name(self._prefix, "broadcast", facility))
        for name in names:
            message: Optional[bytes] = self._connection.get(name)
            if message:
                return message
        return None
