"""Transports: how each server hands over the raw connection of a websocket.

The middleware never frames bytes itself through a server's websocket API:
after the handshake it asks for a :class:`Transport` (read some bytes, write
bytes, close), and the one frame codec of :mod:`ws4redis_mw.frames` runs on
top.  That keeps close codes, text/binary types and limits identical under
every server.

* gevent's pywsgi (our ``serve`` runner, our gunicorn worker, the development
  server): the middleware does the handshake itself: it answers
  ``101 Switching Protocols`` through ``start_response``, reads the socket's
  buffered reader (pywsgi passes it as ``wsgi.input`` for upgrade requests)
  and writes through the ``write`` callable.
* gevent-websocket's ``WebSocketHandler`` (and its gunicorn worker): the
  handler has already sent the 101 before the application runs, so the
  handshake cannot be refused with an HTTP status any more; refusals become
  close frames.  We read and write its handler's socket, and keep its
  ``WebSocket`` object from sending its own (code-less) close frame.
"""

from __future__ import annotations

import socket
from typing import Callable, List, Optional, Tuple

import gevent

__all__ = ["Transport", "NotSupported", "already_upgraded", "accept"]


class NotSupported(Exception):
    """This server cannot hand a websocket connection over to us."""


class _Interrupted(Exception):
    pass


class Transport:
    """Bytes in and out of one upgraded connection.

    :meth:`recv` returns ``None`` when ``timeout`` seconds pass or
    :meth:`interrupt` is called, and ``b""`` at end of stream.
    """

    _reader: Optional[gevent.Greenlet] = None

    def recv(self, size: int, timeout: Optional[float]) -> Optional[bytes]:
        self._reader = gevent.getcurrent()
        try:
            with gevent.Timeout(timeout, False):
                return self._read(size)
            return None
        except _Interrupted:
            return None
        finally:
            self._reader = None

    def interrupt(self) -> None:
        """Make a :meth:`recv` blocked in another greenlet return ``None`` now."""
        reader = self._reader
        if reader is not None and reader is not gevent.getcurrent():
            gevent.get_hub().loop.run_callback(self._throw, reader)

    def _throw(self, reader) -> None:
        if self._reader is reader:
            reader.throw(_Interrupted())

    def _read(self, size: int) -> bytes:
        raise NotImplementedError

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class BufferedSocketTransport(Transport):
    """A buffered reader plus a write function over one socket."""

    def __init__(self, rfile, write: Callable[[bytes], None], sock: Optional[socket.socket]):
        self._rfile = rfile
        self.send = write  # type: ignore[assignment]
        self._sock = sock

    def _read(self, size: int) -> bytes:
        return self._rfile.read1(size)

    def close(self) -> None:
        # Shut the socket down so the client sees the end now, and close the
        # reader so the server's keep-alive loop stops instead of parsing
        # websocket bytes as a new HTTP request.
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self._rfile.close()
        except OSError:
            pass


def _socket_of(rfile) -> Optional[socket.socket]:
    return getattr(getattr(rfile, "raw", None), "_sock", None)


_UNSUPPORTED = (
    "this server cannot take over a websocket connection: serve with gevent's pywsgi "
    "(python -m ws4redis_mw.serve), gunicorn's GeventWebSocketWorker or uWSGI --gevent --http-websockets"
)


def server_kind(environ: dict) -> Optional[str]:
    """Which server runs this request, as far as taking over a socket goes; ``None``: one we can't use."""
    if environ.get("wsgi.websocket") is not None:
        return "gevent-websocket"
    if environ.get("SERVER_SOFTWARE", "").startswith("gevent/"):
        return "pywsgi"
    return None


def already_upgraded(environ: dict) -> bool:
    """True when the server sent the 101 before calling the application."""
    return server_kind(environ) == "gevent-websocket"


def check_supported(environ: dict) -> None:
    """Raise :class:`NotSupported` before the handshake if :func:`accept` would."""
    if server_kind(environ) is None:
        raise NotSupported(_UNSUPPORTED)


def accept(environ: dict, start_response: Callable, headers: List[Tuple[str, str]]) -> Transport:
    """Complete the upgrade with ``headers`` and return the connection's transport."""
    kind = server_kind(environ)
    if kind == "gevent-websocket":
        websocket = environ["wsgi.websocket"]
        handler = websocket.handler
        websocket.closed = True  # we send the close frames, with their codes
        return BufferedSocketTransport(handler.rfile, handler.socket.sendall, handler.socket)
    if kind == "pywsgi":
        rfile = environ["wsgi.input"]
        write = start_response("101 Switching Protocols", headers)
        write(b"")  # sends the status line and headers now
        return BufferedSocketTransport(rfile, write, _socket_of(rfile))
    raise NotSupported(_UNSUPPORTED)
