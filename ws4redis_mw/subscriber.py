"""Which channels a websocket subscribes and publishes to (``WS4REDIS_SUBSCRIBER``).

The default class keeps ws4redis's rule: each ``subscribe-<audience>`` and
``publish-<audience>`` flag of the query string adds the channel of the
requesting user, their groups, their session, or the broadcast channel of the
facility.  A site may name a subclass in ``WS4REDIS_SUBSCRIBER``, as in
ws4redis:

* :attr:`RedisSubscriber.subscription_channels` and
  :attr:`RedisSubscriber.publish_channels` list the flags a client may ask
  for; the others are ignored (logged);
* :meth:`RedisSubscriber.set_pubsub_channels` ``(request, channels)`` fills
  the publish channels (``self._publishers``) and subscribes through
  ``self._subscription.subscribe(*keys)`` exactly as a ws4redis subclass
  does; the hub then does the real subscribing, once, for the whole process.

:func:`subscriber_class` checks the class named in the settings when the
middleware starts, so a class that cannot work is refused with a clear error
rather than ignored.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Set

from .redis_store import SELF, RedisStore

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["RedisSubscriber", "subscriber_class"]


class _Subscriptions:
    """Stands in for ws4redis's per-socket ``PubSub``: it only collects channel names."""

    __slots__ = ("channels",)

    def __init__(self) -> None:
        self.channels: List[str] = []

    def subscribe(self, *channels: str) -> None:
        self.channels.extend(channels)


class RedisSubscriber(RedisStore):
    subscription_channels = ["subscribe-session", "subscribe-group", "subscribe-user", "subscribe-broadcast"]
    publish_channels = ["publish-session", "publish-group", "publish-user", "publish-broadcast"]

    def __init__(self, connection: Any = None, *, settings: Optional["Settings"] = None):
        super().__init__(connection, settings=settings)
        self._subscription = _Subscriptions()

    def set_pubsub_channels(self, request: Any, channels: Iterable[str]) -> None:
        """Fill the publish channels and subscriptions from the query flags ``channels``.

        The facility is the request path after ``WEBSOCKET_URL``, as in ws4redis.
        """
        flags = set(channels)
        facility = request.path_info[len(self.settings.websocket_url):]
        self._publishers = set(self._get_message_channels(request=request, facility=facility, **_audience(flags, "publish")))
        self._subscription.subscribe(*self._get_message_channels(request=request, facility=facility, **_audience(flags, "subscribe")))

    @property
    def subscriptions(self) -> List[str]:
        return list(dict.fromkeys(self._subscription.channels))

    @property
    def publishers(self) -> List[str]:
        return sorted(self._publishers)

    @classmethod
    def allowed_flags(cls) -> Set[str]:
        return set(cls.subscription_channels) | set(cls.publish_channels)


def _audience(flags: Set[str], verb: str) -> Dict[str, Any]:
    return {
        "users": [SELF] if f"{verb}-user" in flags else [],
        "groups": [SELF] if f"{verb}-group" in flags else [],
        "sessions": [SELF] if f"{verb}-session" in flags else [],
        "broadcast": f"{verb}-broadcast" in flags,
    }


def subscriber_class(value: Any) -> "type[RedisSubscriber]":
    """The ``WS4REDIS_SUBSCRIBER`` class (a class or a dotted path), checked."""
    from .settings import SettingsError, import_string_or_callable

    cls = import_string_or_callable(value)
    if not (isinstance(cls, type) and issubclass(cls, RedisSubscriber)):
        raise SettingsError(f"WS4REDIS_SUBSCRIBER must name a subclass of ws4redis_mw.subscriber.RedisSubscriber, not {value!r}")
    try:
        inspect.signature(cls).bind(settings=None)
    except TypeError as exc:
        raise SettingsError(f"WS4REDIS_SUBSCRIBER {value!r} must accept RedisSubscriber's arguments "
                            f"(connection=None, *, settings=None): {exc}") from None
    for method, instead in UNHONOURED.items():
        if getattr(cls, method, None) is not getattr(RedisSubscriber, method, None):
            raise SettingsError(f"WS4REDIS_SUBSCRIBER {value!r} overrides {method}(), which ws4redis_mw never calls "
                                f"on a subscriber: {instead}. Remove the override.")
    return cls


#: ws4redis' per-socket methods a subclass may have overridden, which the
#: process's one hub replaces: an override would be silently ignored, so it
#: is refused at startup, with where that work is done now.
UNHONOURED = {
    "send_persisted_messages": "the hub sends each channel's kept message when a socket opens "
                               "(WS4REDIS_EXPIRE; WS4REDIS_HISTORY for more than the last one)",
    "parse_response": "the hub reads Redis for the whole process and hands each socket its messages",
    "get_file_descriptor": "the hub holds the process's one Redis subscription",
    "release": "the hub unsubscribes a channel when its last socket closes",
    "publish_message": "a client's messages are published by the hub to the socket's publish channels "
                       "(filter them with WS4REDIS_ALLOWED_CHANNELS)",
    "pipeline_publish_message": "a client's messages are published by the hub to the socket's publish channels "
                                "(filter them with WS4REDIS_ALLOWED_CHANNELS)",
}
