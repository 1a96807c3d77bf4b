"""ws4redis_mw: websockets for Django, bridged to Redis pub/sub by one WSGI middleware.

    from ws4redis_mw import WebSocketMiddleware, RedisPublisher, RedisMessage, SELF
    from ws4redis_mw import RedisUnavailable   # what RedisPublisher raises when Redis cannot be reached
    from ws4redis_mw import stats              # this process's numbers (ws4redis_mw.metrics)
    from ws4redis_mw import disconnect         # close a user's, session's or facility's sockets in every worker
"""

# The one place the version is written (pyproject.toml, docs/conf.py and the
# release check read it).  Between releases it is the next release's .dev0;
# a release sets it to that release (1.0.0) and tags v1.0.0, which the
# release workflow checks against this line.
__version__ = "1.0.0.dev0"

__all__ = ["WebSocketMiddleware", "RedisPublisher", "RedisMessage", "SELF", "close_all_websockets", "RedisUnavailable", "stats",
           "disconnect"]


from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy, so that ``INSTALLED_APPS = ["ws4redis_mw"]`` imports nothing that
    # needs Django to be set up, and ``import ws4redis_mw`` stays cheap.
    if name == "WebSocketMiddleware":
        from .middleware import WebSocketMiddleware

        return WebSocketMiddleware
    if name == "RedisPublisher":
        from .publisher import RedisPublisher

        return RedisPublisher
    if name in ("RedisMessage", "SELF"):
        from . import redis_store

        return getattr(redis_store, name)
    if name == "RedisUnavailable":
        from .errors import RedisUnavailable

        return RedisUnavailable
    if name == "stats":
        from .metrics import stats

        return stats
    if name == "disconnect":
        from .control import disconnect

        return disconnect
    if name == "close_all_websockets":
        from .shutdown import close_all_websockets

        return close_all_websockets
    raise AttributeError(f"module 'ws4redis_mw' has no attribute {name!r}")
