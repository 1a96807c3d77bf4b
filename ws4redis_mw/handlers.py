"""gevent pywsgi's request handlers with a handshake timeout: our runner, the development server, gunicorn.

pywsgi waits for a request line and headers as long as a client cares to take,
so idle connections (or a byte every few seconds, slowloris) hold descriptors
forever.  :func:`with_timeout` gives a handler class (pywsgi's own,
gevent-websocket's, ours) a timeout of ``WS4REDIS_HANDSHAKE_TIMEOUT`` seconds
of silence on the connection's socket: a client that sends nothing for that
long while its request is read (or while a response is written to it, or
between keep-alive requests) is disconnected.  A websocket is not affected:
it is served on a socket of its own once the handshake is done.  Our runner
and ``runserver`` use it; under gunicorn, ``-c python:ws4redis_mw.gunicorn_conf``
applies it to the worker's handler.
"""

from __future__ import annotations

from typing import Any, Optional, Type, TypeVar

from gevent import pywsgi

__all__ = ["with_timeout", "handshake_timeout"]

H = TypeVar("H", bound=pywsgi.WSGIHandler)


def handshake_timeout() -> Optional[float]:
    """``WS4REDIS_HANDSHAKE_TIMEOUT`` if Django is configured, else ``None``."""
    from django.conf import settings

    if not settings.configured:
        return None
    from .settings import process_settings

    return process_settings().handshake_timeout


def with_timeout(handler_class: Type[H], timeout: Optional[float]) -> Type[H]:
    """``handler_class`` whose connections time out after ``timeout`` seconds of silence (``None``: as it is)."""
    if timeout is None:
        return handler_class

    def handle(self: Any) -> None:
        self.socket.settimeout(timeout)
        handler_class.handle(self)

    return type(handler_class.__name__, (handler_class,), {"handle": handle, "handshake_timeout": timeout})
