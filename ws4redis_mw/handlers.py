"""gevent pywsgi's request handler with a handshake timeout, for our runner and the development server.

pywsgi waits for a request line and headers as long as a client cares to take,
so idle connections (or a byte every few seconds, slowloris) hold descriptors
forever.  :class:`TimeoutHandler` gives the connection's socket a timeout of
``WS4REDIS_HANDSHAKE_TIMEOUT`` seconds of silence: a client that sends nothing
for that long while its request is read (or while a response is written to
it, or between keep-alive requests) is disconnected.  A websocket is not
affected: it is served on a socket of its own once the handshake is done.
gunicorn's workers have no such hook; put nginx (``client_header_timeout``) in
front of them.
"""

from __future__ import annotations

from typing import Optional

from gevent import pywsgi

__all__ = ["TimeoutHandler", "handshake_timeout"]


def handshake_timeout() -> Optional[float]:
    """``WS4REDIS_HANDSHAKE_TIMEOUT`` if Django is configured, else ``None``."""
    from django.conf import settings

    if not settings.configured:
        return None
    from .settings import process_settings

    return process_settings().handshake_timeout


class TimeoutHandler(pywsgi.WSGIHandler):
    #: Seconds of silence allowed; set on the class by whoever serves with it.
    timeout: Optional[float] = None

    def handle(self) -> None:
        if self.timeout is not None:
            self.socket.settimeout(self.timeout)
        super().handle()
