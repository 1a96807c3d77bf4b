"""The settings ws4redis_mw reads from Django, with their defaults.

The names, meanings and defaults of the ``WEBSOCKET_URL`` and ``WS4REDIS_*``
settings are those of django-websocket-redis 0.6, so a ws4redis site keeps its
settings.py.  The ``WS4REDIS_MAX_*``, ``WS4REDIS_PING_*``,
``WS4REDIS_CLOSE_TIMEOUT``, ``WS4REDIS_ALLOWED_ORIGINS``, ``WS4REDIS_REDIS_*``,
``WS4REDIS_PUBLISHER_TIMEOUT`` and ``WS4REDIS_METRICS_*`` settings are ours;
each is documented below with its unit, default and what ``None`` means.

Settings are read once and handed down: a :class:`Settings` object given to
``WebSocketMiddleware(app, settings=...)`` is the one every part of that
middleware uses (handshake, channel names, hub, subscriber, each socket's
rules); without one, and for the publisher Django code calls,
:func:`process_settings` reads Django's settings once per process.  Nothing
reads them on the per-message path.
"""

from __future__ import annotations

import dataclasses
import functools
from importlib import import_module
from typing import Any, Callable, Dict, List, Optional, Union, cast

__all__ = ["Settings", "load", "process_settings", "import_string_or_callable", "SettingsError"]


class SettingsError(ValueError):
    """A ``WS4REDIS_*`` setting has a value ws4redis_mw cannot use."""

DEFAULT_CONNECTION = {"host": "localhost", "port": 6379, "db": 0, "password": None}


@dataclasses.dataclass(frozen=True)
class Settings:
    #: Path prefix under which websocket requests are taken over.
    websocket_url: str = "/ws/"
    #: A dict of redis-py connection arguments or a ``redis://``, ``rediss://``
    #: or ``unix://`` URL; for Redis Sentinel a ``redis+sentinel://`` URL or a
    #: dict with ``sentinels`` and ``service_name`` (:mod:`ws4redis_mw.connection`).
    connection: Union[Dict[str, Any], str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_CONNECTION))
    #: Seconds a published message is kept for clients connecting later; 0 keeps nothing.
    expire: int = 3600
    #: Prefix of every Redis key; ``None`` for none.
    prefix: Optional[str] = None
    #: The heartbeat string; ``None`` disables heartbeats.
    heartbeat: Optional[str] = None
    #: Seconds of silence after which the server sends the heartbeat string.
    heartbeat_interval: float = 4.0
    #: Dotted path of the class that turns query flags into channel names.
    subscriber: str = "ws4redis_mw.subscriber.RedisSubscriber"
    #: ``f(request, flags) -> flags`` (callable or dotted path) to filter flags; ``None``: all allowed.
    allowed_channels: Any = None
    #: ``f(request)`` (callable or dotted path) setting ``request.session`` and
    #: ``request.user``; ``None``: from the Django session cookie.
    process_request: Any = None
    #: Largest message a client may send, in bytes (after reassembly); larger closes with 1009.
    max_message_size: int = 64 * 1024
    #: Bytes queued for one client that the kernel has not taken yet; a
    #: message that would go past it closes the socket with 1013 (a message
    #: always fits into an empty backlog). ``None``: unbounded.
    max_backlog: Optional[int] = 1024 * 1024
    #: Seconds without a byte from the client after which the server sends a
    #: websocket ping; ``None``: no pings.
    ping_interval: Optional[float] = 25.0
    #: Seconds the client has to answer a ping (with anything) before the
    #: socket is closed with 1011; ``None``: never.
    ping_timeout: Optional[float] = 20.0
    #: Seconds the client has to answer the server's close frame before the
    #: connection is ended anyway (counted from the next tick of the process
    #: timer, so up to one second more).
    close_timeout: float = 2.0
    #: Origins allowed to open websockets (``["*"]`` for any). ``None``: the
    #: Origin's host must pass Django's ``ALLOWED_HOSTS``. Requests without an
    #: Origin header (non-browser clients) are always allowed.
    allowed_origins: Optional[List[str]] = None
    #: Seconds the hub gives Redis to accept a connection, answer a command or
    #: confirm a subscription before it counts as unavailable (503/1013).
    redis_timeout: float = 2.0
    #: Seconds of silence on the hub's subscription connection after which it
    #: is sent a ``PING``; no answer within ``redis_timeout`` means Redis is
    #: gone.  A hung Redis is thus noticed within their sum (4 s by default).
    redis_health_interval: float = 2.0
    #: Seconds a ``RedisPublisher`` call may take (connecting, waiting for a
    #: pooled connection, each reply) before it raises
    #: :class:`ws4redis_mw.RedisUnavailable`; applied whatever redis-py's version.
    publisher_timeout: float = 3.0
    #: Path at which the middleware serves Prometheus metrics (for example
    #: ``"/ws4redis-metrics"``); ``None``: not served.
    metrics_url: Optional[str] = None
    #: Client addresses or networks (``"10.0.0.0/8"``) allowed to read
    #: ``metrics_url``; others get 403.  ``["*"]``: anyone.
    metrics_allowed: List[str] = dataclasses.field(default_factory=lambda: ["127.0.0.1", "::1"])


def load() -> Settings:
    """Read the settings from ``django.conf.settings``, applying the defaults."""
    from django.conf import settings as django_settings

    def get(name: str, field: str) -> Any:
        default = Settings.__dataclass_fields__[field]
        fallback = default.default_factory() if default.default_factory is not dataclasses.MISSING else default.default
        return getattr(django_settings, name, fallback)

    websocket_url = get("WEBSOCKET_URL", "websocket_url")
    if not websocket_url.startswith("/") or not websocket_url.endswith("/"):
        raise SettingsError(f"WEBSOCKET_URL must start and end with '/', not {websocket_url!r}")
    if hasattr(django_settings, "WS4REDIS_MAX_PENDING"):
        raise SettingsError("WS4REDIS_MAX_PENDING (a count of messages) is replaced by WS4REDIS_MAX_BACKLOG "
                            "(bytes the kernel has not taken yet, default 1 MiB): rename it and give it in bytes")

    def seconds(name: str, field: str) -> Optional[float]:
        value = get(name, field)
        return None if value is None else float(value)

    def positive(name: str, field: str) -> float:
        value = float(get(name, field))
        if not value > 0:
            raise SettingsError(f"{name} must be a number of seconds above 0, not {value!r}")
        return value
    return Settings(
        websocket_url=websocket_url,
        connection=get("WS4REDIS_CONNECTION", "connection"),
        expire=int(get("WS4REDIS_EXPIRE", "expire") or 0),
        prefix=get("WS4REDIS_PREFIX", "prefix"),
        heartbeat=get("WS4REDIS_HEARTBEAT", "heartbeat"),
        heartbeat_interval=float(get("WS4REDIS_HEARTBEAT_INTERVAL", "heartbeat_interval")),
        subscriber=get("WS4REDIS_SUBSCRIBER", "subscriber"),
        allowed_channels=get("WS4REDIS_ALLOWED_CHANNELS", "allowed_channels"),
        process_request=get("WS4REDIS_PROCESS_REQUEST", "process_request"),
        max_message_size=int(get("WS4REDIS_MAX_MESSAGE_SIZE", "max_message_size")),
        max_backlog=get("WS4REDIS_MAX_BACKLOG", "max_backlog"),
        ping_interval=seconds("WS4REDIS_PING_INTERVAL", "ping_interval"),
        ping_timeout=seconds("WS4REDIS_PING_TIMEOUT", "ping_timeout"),
        close_timeout=float(get("WS4REDIS_CLOSE_TIMEOUT", "close_timeout")),
        allowed_origins=get("WS4REDIS_ALLOWED_ORIGINS", "allowed_origins"),
        redis_timeout=positive("WS4REDIS_REDIS_TIMEOUT", "redis_timeout"),
        redis_health_interval=positive("WS4REDIS_REDIS_HEALTH_INTERVAL", "redis_health_interval"),
        publisher_timeout=positive("WS4REDIS_PUBLISHER_TIMEOUT", "publisher_timeout"),
        metrics_url=get("WS4REDIS_METRICS_URL", "metrics_url"),
        metrics_allowed=list(get("WS4REDIS_METRICS_ALLOWED", "metrics_allowed")),
    )


@functools.lru_cache(maxsize=None)
def process_settings() -> Settings:
    """Django's settings, read once per process (the publisher, a middleware given none)."""
    return load()


def import_string_or_callable(value: Any) -> Optional[Callable[..., Any]]:
    """Return ``value`` itself if callable, the object a dotted path names, or ``None``."""
    if value is None:
        return None
    if callable(value):
        return cast("Callable[..., Any]", value)
    module, _, name = str(value).rpartition(".")
    function: Callable[..., Any] = getattr(import_module(module), name)
    return function
