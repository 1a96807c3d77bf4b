"""The settings ws4redis_mw reads from Django, with their defaults.

The names, meanings and defaults of the ``WEBSOCKET_URL`` and ``WS4REDIS_*``
settings are those of django-websocket-redis 0.6, so a ws4redis site keeps its
settings.py.  The ``WS4REDIS_MAX_*`` and ``WS4REDIS_ALLOWED_ORIGINS`` settings
are ours; each is documented below with its unit, default and what ``None``
means.

Settings are read once, when :func:`load` is called (the middleware calls it on
its first request), never on the per-message path.
"""

from __future__ import annotations

import dataclasses
from importlib import import_module
from typing import Any, Callable, Optional, Union

__all__ = ["Settings", "load", "import_string_or_callable"]

DEFAULT_CONNECTION = {"host": "localhost", "port": 6379, "db": 0, "password": None}


@dataclasses.dataclass(frozen=True)
class Settings:
    #: Path prefix under which websocket requests are taken over.
    websocket_url: str = "/ws/"
    #: A dict of redis-py connection arguments or a ``redis://``, ``rediss://``
    #: or ``unix://`` URL.
    connection: Union[dict, str] = dataclasses.field(default_factory=lambda: dict(DEFAULT_CONNECTION))
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
    #: Messages queued for one slow client before it is closed with 1013; ``None``: unbounded.
    max_pending: Optional[int] = 1000
    #: Origins allowed to open websockets (``["*"]`` for any). ``None``: the
    #: Origin's host must pass Django's ``ALLOWED_HOSTS``. Requests without an
    #: Origin header (non-browser clients) are always allowed.
    allowed_origins: Optional[list] = None


def load() -> Settings:
    """Read the settings from ``django.conf.settings``, applying the defaults."""
    from django.conf import settings as django_settings

    def get(name: str, field: str) -> Any:
        default = Settings.__dataclass_fields__[field]
        fallback = default.default_factory() if default.default_factory is not dataclasses.MISSING else default.default
        return getattr(django_settings, name, fallback)

    websocket_url = get("WEBSOCKET_URL", "websocket_url")
    if not websocket_url.startswith("/") or not websocket_url.endswith("/"):
        raise ValueError(f"WEBSOCKET_URL must start and end with '/', not {websocket_url!r}")
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
        max_pending=get("WS4REDIS_MAX_PENDING", "max_pending"),
        allowed_origins=get("WS4REDIS_ALLOWED_ORIGINS", "allowed_origins"),
    )


def import_string_or_callable(value: Any) -> Optional[Callable]:
    """Return ``value`` itself if callable, the object a dotted path names, or ``None``."""
    if value is None or callable(value):
        return value
    module, _, name = str(value).rpartition(".")
    return getattr(import_module(module), name)
