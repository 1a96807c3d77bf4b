"""The settings ws4redis_mw reads from Django, with their defaults.

The names, meanings and defaults of the ``WEBSOCKET_URL`` and ``WS4REDIS_*``
settings are those of django-websocket-redis 0.6, so a ws4redis site keeps its
settings.py.  The ``WS4REDIS_MAX_*``, ``WS4REDIS_PING_*``,
``WS4REDIS_CLOSE_TIMEOUT``, ``WS4REDIS_ALLOWED_ORIGINS``, ``WS4REDIS_REDIS_*``,
``WS4REDIS_PUBLISHER_TIMEOUT``, ``WS4REDIS_METRICS_*``, ``WS4REDIS_HISTORY``,
``WS4REDIS_MAX_RECOVER`` and ``WS4REDIS_TRUSTED_PROXIES`` settings are ours;
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
from typing import Any, Callable, Dict, List, Optional, Tuple, Union, cast

from .channels import validate_prefix
from .clientaddr import TrustedProxies, trusted_proxies

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
    #: Origins allowed to open websockets besides the request's own: exact
    #: origins (``"https://example.com"``), subdomain wildcards
    #: (``"https://*.example.com"``) or ``"*"`` for any; or a callable
    #: ``f(origin) -> bool`` (or its dotted path). ``None``: only the
    #: request's own origin (and ``CSRF_TRUSTED_ORIGINS``). Requests without
    #: an Origin header (non-browser clients) are always allowed.
    allowed_origins: Any = None
    #: Subprotocols (``Sec-WebSocket-Protocol``) this site speaks, in the
    #: client's order of preference: the first of the client's offers that is
    #: listed is selected, and a client that offers only others is refused with
    #: 400. ``None``: the client's first offer is selected, whatever it is (as
    #: ws4redis did). A client that offers none gets none either way.
    subprotocols: Optional[Tuple[str, ...]] = None
    #: Django's ``CSRF_TRUSTED_ORIGINS``, trusted here too (same syntax).
    csrf_trusted_origins: Tuple[str, ...] = ()
    #: Django's ``SECURE_PROXY_SSL_HEADER``: says when a request came over TLS
    #: to a proxy, so that its own origin is ``https://``.
    secure_proxy_ssl_header: Optional[Tuple[str, str]] = None
    #: Frames a client message may be made of (fragments); more closes with
    #: 1009, so that empty fragments are not free. ``None``: no limit.
    max_frames_per_message: Optional[int] = 1024
    #: Frames per second a client may send on average (a burst of as many
    #: again is allowed); more closes with 1008. ``None``: no limit.
    max_frame_rate: Optional[float] = 1000.0
    #: Messages per second a client may publish on average (a burst of
    #: ``publish_burst`` is allowed); more closes with 1008. ``None``: no limit.
    max_publish_rate: Optional[float] = 50.0
    #: Messages a client may publish at once before ``max_publish_rate`` applies.
    publish_burst: int = 100
    #: Bytes per second a client may publish on average (each delivery costs
    #: the worker per byte, times the subscribers); a burst of
    #: ``max_message_size`` or a second's worth, whichever is more, is
    #: allowed; more closes with 1008. ``None``: no limit.
    max_publish_bytes_rate: Optional[float] = 256 * 1024.0
    #: Open websockets per client address, per worker process; more are
    #: refused with 429. ``None``: no limit.
    max_sockets_per_ip: Optional[int] = 1000
    #: Open websockets per authenticated user, per worker process; more are
    #: refused with 429. ``None``: no limit.
    max_sockets_per_user: Optional[int] = 100
    #: Seconds a message published by an anonymous client is kept (its
    #: socket has no user); 0 keeps nothing, so anonymous clients cannot fill Redis.
    anonymous_expire: int = 0
    #: Whether publications of anonymous clients enter the channels' history
    #: (``WS4REDIS_HISTORY``), so that recovering clients get them too. Off:
    #: nothing an anonymous client sends stays in Redis (with the default
    #: ``anonymous_expire`` of 0), so anonymous clients cannot fill it.
    anonymous_history: bool = False
    #: Seconds a connection may take to send its request headers in our
    #: runner and the development server; ``None``: no limit.
    handshake_timeout: Optional[float] = 10.0
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
    #: Per-channel history for recovery (:mod:`ws4redis_mw.history`): ``None``
    #: (none), ``{"size": 100, "ttl": 300}`` (the last ``size`` publications of
    #: every channel, dropped ``ttl`` seconds after its last publication), or a
    #: callable ``f(facility, audience) -> dict or None`` (or its dotted path).
    history: Any = None
    #: Most publications a reconnecting client is sent to catch up; more
    #: missed than this is "not recovered".
    max_recover: int = 300
    #: Peers whose ``X-Forwarded-For``/``-Proto`` are believed
    #: (:mod:`ws4redis_mw.clientaddr`); given as the setting's value (``None``:
    #: loopback and unix-socket peers for one hop; a count of hops; a list of
    #: addresses or networks, ``"unix"`` included), kept parsed.
    trusted_proxies: TrustedProxies = cast("TrustedProxies", None)  # the setting's default; parsed below

    def __post_init__(self) -> None:
        # Settings(trusted_proxies=[...]) as well as load(): parsed once, a bad value fails here.
        object.__setattr__(self, "trusted_proxies", trusted_proxies(self.trusted_proxies))
        validate_prefix(self.prefix)  # also for a Settings made in code, not read from Django


_OPTIONAL_FLOAT = "optional float"
_OPTIONAL_INT = "optional int"
_POSITIVE_SECONDS = "positive seconds"

#: field -> (Django setting, conversion); the ws4redis names where ws4redis had the setting.
SOURCES: Dict[str, Tuple[str, Any]] = {
    "websocket_url": ("WEBSOCKET_URL", str),
    "connection": ("WS4REDIS_CONNECTION", None),
    "expire": ("WS4REDIS_EXPIRE", lambda value: int(value or 0)),
    "prefix": ("WS4REDIS_PREFIX", "prefix"),
    "heartbeat": ("WS4REDIS_HEARTBEAT", None),
    "heartbeat_interval": ("WS4REDIS_HEARTBEAT_INTERVAL", float),
    "subscriber": ("WS4REDIS_SUBSCRIBER", None),
    "allowed_channels": ("WS4REDIS_ALLOWED_CHANNELS", None),
    "process_request": ("WS4REDIS_PROCESS_REQUEST", None),
    "max_message_size": ("WS4REDIS_MAX_MESSAGE_SIZE", int),
    "max_backlog": ("WS4REDIS_MAX_BACKLOG", _OPTIONAL_INT),
    "ping_interval": ("WS4REDIS_PING_INTERVAL", _OPTIONAL_FLOAT),
    "ping_timeout": ("WS4REDIS_PING_TIMEOUT", _OPTIONAL_FLOAT),
    "close_timeout": ("WS4REDIS_CLOSE_TIMEOUT", float),
    "allowed_origins": ("WS4REDIS_ALLOWED_ORIGINS", None),
    "subprotocols": ("WS4REDIS_SUBPROTOCOLS", "subprotocols"),
    "csrf_trusted_origins": ("CSRF_TRUSTED_ORIGINS", tuple),
    "secure_proxy_ssl_header": ("SECURE_PROXY_SSL_HEADER", lambda value: tuple(value) if value else None),
    "max_frames_per_message": ("WS4REDIS_MAX_FRAMES_PER_MESSAGE", _OPTIONAL_INT),
    "max_frame_rate": ("WS4REDIS_MAX_FRAME_RATE", _OPTIONAL_FLOAT),
    "max_publish_rate": ("WS4REDIS_MAX_PUBLISH_RATE", _OPTIONAL_FLOAT),
    "publish_burst": ("WS4REDIS_PUBLISH_BURST", int),
    "max_publish_bytes_rate": ("WS4REDIS_MAX_PUBLISH_BYTES_RATE", _OPTIONAL_FLOAT),
    "max_sockets_per_ip": ("WS4REDIS_MAX_SOCKETS_PER_IP", _OPTIONAL_INT),
    "max_sockets_per_user": ("WS4REDIS_MAX_SOCKETS_PER_USER", _OPTIONAL_INT),
    "anonymous_expire": ("WS4REDIS_ANONYMOUS_EXPIRE", lambda value: int(value or 0)),
    "anonymous_history": ("WS4REDIS_ANONYMOUS_HISTORY", bool),
    "handshake_timeout": ("WS4REDIS_HANDSHAKE_TIMEOUT", _OPTIONAL_FLOAT),
    "redis_timeout": ("WS4REDIS_REDIS_TIMEOUT", _POSITIVE_SECONDS),
    "redis_health_interval": ("WS4REDIS_REDIS_HEALTH_INTERVAL", _POSITIVE_SECONDS),
    "publisher_timeout": ("WS4REDIS_PUBLISHER_TIMEOUT", _POSITIVE_SECONDS),
    "metrics_url": ("WS4REDIS_METRICS_URL", None),
    "metrics_allowed": ("WS4REDIS_METRICS_ALLOWED", list),
    "history": ("WS4REDIS_HISTORY", "history"),
    "max_recover": ("WS4REDIS_MAX_RECOVER", int),
    "trusted_proxies": ("WS4REDIS_TRUSTED_PROXIES", trusted_proxies),
}


def _convert(conversion: Any, value: Any) -> Any:
    if conversion is None:
        return value
    if conversion == _OPTIONAL_FLOAT:
        return None if value is None else float(value)
    if conversion == _OPTIONAL_INT:
        return None if value is None else int(value)
    if conversion == "history":
        if value is not None and not callable(value) and not isinstance(value, str):
            from .history import config_from_setting

            config_from_setting(value)  # raises ValueError if unusable
        return value
    if conversion == "prefix":
        return validate_prefix(value)
    if conversion == "subprotocols":
        from .handshake import validate_subprotocols

        return validate_subprotocols(value)
    if conversion == _POSITIVE_SECONDS:
        if not float(value) > 0:
            raise ValueError(f"must be a number of seconds above 0, not {value!r}")
        return float(value)
    return conversion(value)


def load() -> Settings:
    """Read the settings from ``django.conf.settings``, applying the defaults."""
    from django.conf import settings as django_settings

    if hasattr(django_settings, "WS4REDIS_MAX_PENDING"):
        raise SettingsError("WS4REDIS_MAX_PENDING (a count of messages) is replaced by WS4REDIS_MAX_BACKLOG "
                            "(bytes the kernel has not taken yet, default 1 MiB): rename it and give it in bytes")
    values: Dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        name, conversion = SOURCES[field.name]
        if hasattr(django_settings, name):
            try:
                values[field.name] = _convert(conversion, getattr(django_settings, name))
            except (TypeError, ValueError) as exc:
                raise SettingsError(f"{name}: {exc}") from None
    settings = Settings(**values)
    if not settings.websocket_url.startswith("/") or not settings.websocket_url.endswith("/"):
        raise SettingsError(f"WEBSOCKET_URL must start and end with '/', not {settings.websocket_url!r}")
    return settings


@functools.lru_cache(maxsize=None)
def process_settings() -> Settings:
    """Django's settings, read once per process (the publisher, a middleware given none)."""
    return load()


#: The settings read where they are used, not into :class:`Settings`: the function that reads each.
_READ_BY = {"WS4REDIS_GROUPS_LIFETIME": "ws4redis_mw.groups.lifetime", "WS4REDIS_TOKEN_MAX_AGE": "ws4redis_mw.tokens.max_age",
            "WEBSOCKET_HOST": "ws4redis_mw.context_processors.websocket_host"}
_FIELDS = {setting: field for field, (setting, _) in SOURCES.items()}


def __getattr__(name: str) -> Any:
    """``ws4redis_mw.settings.WS4REDIS_EXPIRE`` and the like, as ws4redis' settings module had them.

    The value as this process read it (:func:`process_settings`, defaults
    applied); code that reads ws4redis' module attributes keeps working.
    """
    if name in _FIELDS:
        return getattr(process_settings(), _FIELDS[name])
    if name in _READ_BY:
        read = import_string_or_callable(_READ_BY[name])
        assert read is not None
        return read()
    if name.startswith(("WS4REDIS_", "WEBSOCKET_")):
        raise AttributeError(f"ws4redis_mw.settings has no {name}: ws4redis_mw does not read that setting "
                             f"(the settings it reads are listed in its README)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def import_string_or_callable(value: Any) -> Optional[Callable[..., Any]]:
    """Return ``value`` itself if callable, the object a dotted path names, or ``None``."""
    if value is None:
        return None
    if callable(value):
        return cast("Callable[..., Any]", value)
    module, _, name = str(value).rpartition(".")
    function: Callable[..., Any] = getattr(import_module(module), name)
    return function
