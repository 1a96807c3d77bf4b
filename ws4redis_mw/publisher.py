"""The publisher Django code calls: ``RedisPublisher(facility=..., broadcast=True)``.

Same API as ws4redis.publisher: the constructor names an audience, and
:meth:`RedisPublisher.publish_message` (or ws4redis' ``pipeline_publish_message``,
all or nothing) sends a :class:`RedisMessage` to it;
:meth:`RedisPublisher.fetch_message` reads back the kept message of a channel.
It uses the process's ordinary redis-py client, so it works from any view,
thread or task.

Every call is bounded by ``WS4REDIS_PUBLISHER_TIMEOUT`` (3 s: connecting,
waiting for one of the pool's connections, each reply), whatever redis-py's
version, and a Redis that cannot be reached raises
:class:`ws4redis_mw.RedisUnavailable` (redis-py's error as its ``__cause__``).
A pooled connection that Redis closed while idle is replaced and the call
sent once more; a timeout is not retried.  Under Redis Cluster a failed
call has the client read the slot map again (:func:`reread_slot_map`), and
``CLUSTERDOWN`` (no master for a slot yet, during a failover) is
:class:`ws4redis_mw.RedisUnavailable` too.
"""

from __future__ import annotations

from typing import Any, Optional

from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .channels import channel_name, validate_facility
from .connection import get_client
from .counters import METRICS
from .errors import RedisUnavailable
from .redis_store import RedisMessage, RedisStore, own_groups, own_sessions, own_users
from .settings import process_settings

#: What redis-py raises when Redis cannot be reached in time (mapped to RedisUnavailable).
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError, ClusterDownError)

__all__ = ["RedisPublisher"]


class RedisPublisher(RedisStore):
    """Publish to ``facility`` for ``broadcast``, ``users``, ``groups`` and ``sessions``.

    Each audience is a list or tuple of names in which :data:`SELF` stands for
    the one of ``request``; ``broadcast`` is a bool.  ``expire`` overrides
    ``WS4REDIS_EXPIRE`` for this publisher.
    """

    def __init__(self, **kwargs: Any):
        settings = process_settings()  # read once per process
        super().__init__(get_client(settings.connection, settings.publisher_timeout), expire=kwargs.pop("expire", None),
                         settings=settings)
        self._publishers = set(self._get_message_channels(**kwargs))

    def _publish(self, message: RedisMessage, expire: Optional[int], transaction: bool) -> None:
        """Publish and keep ``message``; raises :class:`~ws4redis_mw.RedisUnavailable` if Redis cannot be reached in time."""
        try:
            super()._publish(message, expire, transaction)
        except UNAVAILABLE as exc:
            METRICS.publish_failures["django"] += 1
            reread_slot_map(self._connection)
            raise RedisUnavailable(f"publishing to Redis failed: {exc}") from exc
        METRICS.published["django"] += len(self._publishers)

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
            try:
                message: Optional[bytes] = self._connection.get(name)
            except UNAVAILABLE as exc:
                reread_slot_map(self._connection)
                raise RedisUnavailable(f"reading from Redis failed: {exc}") from exc
            if message:
                return message
        return None


def reread_slot_map(client: Any) -> None:
    """Under Redis Cluster: have ``client`` read the slot map again after a failed call, and pick a default node that answers.

    redis-py (8.1) reads the map again only when the connection to the
    target node fails, but its pipeline first asks the client's default node
    for an ``EVAL``'s keys: once that node is dead, every publish fails
    there, whatever its slot, and neither the map nor the default node is
    ever renewed, even after a replica has taken over.  A fresh map's default
    node may be the dead master while it still serves its slots, hence the
    ``PING``.
    """
    if not isinstance(client, RedisCluster):
        return
    try:
        client.nodes_manager.initialize()
    except Exception:  # the cluster is still down: the next failed call tries again
        return
    for node in client.get_primaries():
        try:
            node.redis_connection.ping()
        except Exception:
            continue
        client.set_default_node(node)
        return
