"""gevent pywsgi's request handlers with a handshake deadline: our runner, the development server, gunicorn.

pywsgi waits for a request line and headers as long as a client cares to take,
so idle connections (or a byte every few seconds, slowloris) hold descriptors
forever.  :func:`with_timeout` gives a handler class (pywsgi's own,
gevent-websocket's, ours) two bounds of ``WS4REDIS_HANDSHAKE_TIMEOUT``
seconds each:

* a **deadline** from the moment the handler starts waiting for a request
  line to the end of the request's headers: a client that has not sent a
  whole request head by then is disconnected (if its request line is in, it
  first gets 408), however steadily it trickles bytes;
* **silence** on the connection's socket: nothing received (or nothing taken
  of a response) for that long disconnects it, between keep-alive requests
  too.

A websocket is not affected: it is served on a socket of its own once the
handshake is done, and a response's own time is the application's.  Our
runner and ``runserver`` use it; under gunicorn,
``-c python:ws4redis_mw.gunicorn_conf`` applies it to the worker's handler.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Type, TypeVar

import gevent
from gevent import pywsgi

__all__ = ["with_timeout", "handshake_timeout", "HandshakeDeadline"]

logger = logging.getLogger("ws4redis_mw.handlers")

_REQUEST_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: 33\r\n\r\nthe request head took too long.\r\n")


class HandshakeDeadline(ValueError):
    """The request head did not arrive in time (a ValueError: pywsgi's "invalid client input", no traceback)."""

H = TypeVar("H", bound=pywsgi.WSGIHandler)


def handshake_timeout() -> Optional[float]:
    """``WS4REDIS_HANDSHAKE_TIMEOUT`` if Django is configured, else ``None``."""
    from django.conf import settings

    if not settings.configured:
        return None
    from .settings import process_settings

    return process_settings().handshake_timeout


def with_timeout(handler_class: Type[H], timeout: Optional[float]) -> Type[H]:
    """``handler_class`` with a request-head deadline and a silence timeout of ``timeout`` seconds (``None``: as it is)."""
    if timeout is None:
        return handler_class

    def handle(self: Any) -> None:
        self.socket.settimeout(timeout)
        handler_class.handle(self)

    def handle_one_request(self: Any) -> Any:
        try:
            return handler_class.handle_one_request(self)
        finally:
            _cancel(self)  # a request refused before its headers were read (414) leaves the timer running

    def read_requestline(self: Any) -> Any:
        _cancel(self)
        self.ws4redis_deadline = gevent.Timeout.start_new(timeout, HandshakeDeadline("request head deadline"))
        try:
            return handler_class.read_requestline(self)
        except HandshakeDeadline:
            # pywsgi closes a connection whose request line is empty: nothing to answer.
            logger.debug("%s: no request line within %s s: closed", self.client_address, timeout)
            return None

    def read_request(self: Any, raw_requestline: str) -> Any:
        try:
            return handler_class.read_request(self, raw_requestline)
        except IndexError:
            # pywsgi's version check indexes "HTTP/1" (no minor number) out of
            # range; its ValueError is the one it answers with a plain 400.
            raise ValueError(f"malformed HTTP version in {raw_requestline!r}") from None
        finally:
            _cancel(self)  # the head is in: what follows is the application's

    def _handle_client_error(self: Any, ex: BaseException) -> Any:
        if isinstance(ex, HandshakeDeadline):
            logger.debug("%s: no request head within %s s: 408", self.client_address, timeout)
            self.close_connection = True
            return ("408", _REQUEST_TIMEOUT_RESPONSE)
        return getattr(handler_class, "_handle_client_error")(self, ex)  # noqa: B009  # pywsgi's hook, not in its types

    return type(handler_class.__name__, (handler_class,), {
        "handle": handle, "handle_one_request": handle_one_request, "read_requestline": read_requestline,
        "read_request": read_request, "_handle_client_error": _handle_client_error, "handshake_timeout": timeout,
    })


def _cancel(handler: Any) -> None:
    timer = handler.__dict__.pop("ws4redis_deadline", None)
    if timer is not None:
        timer.close()
