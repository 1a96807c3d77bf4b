"""The one exception ws4redis_mw raises when Redis cannot be reached in time.

:class:`RedisUnavailable` is raised by :class:`~ws4redis_mw.RedisPublisher`
(connection refused or lost, no pooled connection free, or no reply within
``WS4REDIS_PUBLISHER_TIMEOUT``) and inside the hub; redis-py's own
``ConnectionError`` and ``TimeoutError`` are its ``__cause__``.  Error replies
(a wrong type, ``READONLY``) stay redis-py's ``ResponseError``: Redis did answer.
"""

from __future__ import annotations

__all__ = ["RedisUnavailable"]


class RedisUnavailable(Exception):
    """Redis cannot be reached right now (refused, lost, or too slow to answer)."""
