"""Which channels a websocket subscribes and publishes to (``WS4REDIS_SUBSCRIBER``).

The default class keeps ws4redis's rule: each ``subscribe-<audience>`` and
``publish-<audience>`` flag of the query string adds the channel of the
requesting user, their groups, their session, or the broadcast channel of the
facility.  A site may name a subclass in ``WS4REDIS_SUBSCRIBER`` and override
:meth:`RedisSubscriber.set_pubsub_channels`; the hub does the subscribing.
"""

from __future__ import annotations

from typing import Any, Iterable, List

from .redis_store import SELF, RedisStore

__all__ = ["RedisSubscriber"]


class RedisSubscriber(RedisStore):
    subscription_channels = ["subscribe-session", "subscribe-group", "subscribe-user", "subscribe-broadcast"]
    publish_channels = ["publish-session", "publish-group", "publish-user", "publish-broadcast"]

    def __init__(self, connection: Any = None):
        super().__init__(connection)
        self.subscriptions: List[str] = []

    def set_pubsub_channels(self, request: Any, channels: Iterable[str], facility: str) -> None:
        """Fill :attr:`subscriptions` and the publish channels from the query ``channels``."""
        flags = set(channels)
        self._publishers = set(self._get_message_channels(request=request, facility=facility, **_audience(flags, "publish")))
        self.subscriptions = self._get_message_channels(request=request, facility=facility, **_audience(flags, "subscribe"))

    @property
    def publishers(self) -> List[str]:
        return sorted(self._publishers)


def _audience(flags: set, verb: str) -> dict:
    return {
        "users": [SELF] if f"{verb}-user" in flags else [],
        "groups": [SELF] if f"{verb}-group" in flags else [],
        "sessions": [SELF] if f"{verb}-session" in flags else [],
        "broadcast": f"{verb}-broadcast" in flags,
    }
