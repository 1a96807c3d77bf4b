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
* uWSGI with its gevent loop (``--gevent``): ``uwsgi.websocket_handshake``
  sends the 101, then we take a duplicate of the request's descriptor
  (``uwsgi.connection_fd()``) and the application returns ``[]`` at once, as
  under pywsgi: uWSGI has sent its headers already and writes nothing more,
  it logs the request (as a 101) and only closes its own descriptor, which
  leaves the connection open on ours.  The request's greenlet, its environ,
  its async core and uWSGI's buffers are freed for the life of the websocket
  (a waiting request cost 25-30 KiB per socket: bench/results/uwsgi-density.md).
  uWSGI's ``websocket_recv`` and ``websocket_send`` are not used: they cannot
  tell text from binary and close without a code.
  Without the gevent loop, behind the ``--http`` router without
  ``--http-websockets``, with ``--http11-socket`` (whose keep-alive would
  read the websocket's bytes as the next request) or with ``--https-socket``
  (whose descriptor carries TLS records) (which would pass the 101 on but never the client's
  frames), the upgrade is refused with 501 and the reason, and
  :func:`prepare_server` says so in the log at startup.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Protocol, Tuple

import gevent
import gevent.socket

from .handshake import SUBPROTOCOL_HEADER

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["Transport", "NotSupported", "server_kind", "already_upgraded", "check_supported", "accept", "prepare_server"]

logger = logging.getLogger("ws4redis_mw.transports")


class NotSupported(Exception):
    """This server cannot hand a websocket connection over to us."""


class Transport(Protocol):
    """Bytes in and out of one upgraded connection; every frame byte comes from :mod:`ws4redis_mw.bridge`."""

    def fileno(self) -> int:
        """The descriptor to watch for reading."""

    def recv_nowait(self, size: int) -> Optional[bytes]:
        """Up to ``size`` bytes without waiting; ``None`` if there are none yet, ``b""`` at end of stream."""

    def send_nowait(self, data: bytes) -> int:
        """Hand ``data`` to the kernel without waiting; how many bytes it took (maybe 0)."""

    def send(self, data: memoryview) -> int:
        """Wait (cooperatively) until the kernel takes some of ``data``; how many bytes."""

    def abort(self) -> None:
        """Shut the connection down now: a blocked :meth:`recv` returns ``b""``, a blocked :meth:`send` fails."""

    def close(self) -> None:
        """Shut down and let go of the connection (the server closes its descriptor)."""


class SocketTransport:
    """A gevent socket of our own, plus any bytes the server had read past the handshake."""

    __slots__ = ("_sock", "_raw", "_pending")

    def __init__(self, sock: socket.socket, pending: bytes = b""):
        self._sock = sock
        # gevent's socket wraps a non-blocking one; reading and sending on
        # that directly is one system call and never switches greenlets.
        self._raw: socket.socket = getattr(sock, "_sock", sock)
        self._pending = pending

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv_nowait(self, size: int) -> Optional[bytes]:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        try:
            return self._raw.recv(size)
        except BlockingIOError:
            return None

    def send_nowait(self, data: bytes) -> int:
        try:
            return self._raw.send(data)
        except BlockingIOError:
            return 0

    def send(self, data: memoryview) -> int:
        return self._sock.send(data)

    def abort(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.abort()
        self._sock.close()


def _take_over(rfile: Any, sock: socket.socket) -> SocketTransport:
    """Take the connection from the server: what its reader had read ahead, and the descriptor.

    Closing the reader makes the server's keep-alive loop stop once the
    application returns, instead of parsing websocket bytes as a new HTTP
    request.  The server's socket object lets go of the descriptor (detach),
    so when the application returns and the server closes its socket, the
    connection stays open, ours; the request's greenlet, environ and handler
    are freed for the life of the websocket.
    """
    timeout = sock.gettimeout()
    sock.settimeout(0.0)  # peek() must not wait: b"" when nothing was read ahead
    try:
        ahead = rfile.peek(1)
        pending = rfile.read1(len(ahead)) if ahead else b""
    finally:
        sock.settimeout(timeout)
    rfile.close()
    return SocketTransport(gevent.socket.socket(fileno=sock.detach()), pending)


_UNSUPPORTED = (
    "this server cannot take over a websocket connection: serve with gevent's pywsgi "
    "(python -m ws4redis_mw.serve), gunicorn's GeventWebSocketWorker or uWSGI --gevent --http-websockets"
)


@functools.lru_cache(maxsize=None)
def _uwsgi_problem() -> Optional[str]:
    """Why this uWSGI process cannot serve websockets, or ``None``; uWSGI's options are fixed per process."""
    import uwsgi

    if getattr(uwsgi, "loop", None) not in (b"gevent", "gevent"):  # bytes under Python 3
        return ("uWSGI runs without its gevent loop: start it with --gevent N "
                "(with threads or plain workers every websocket would hold a worker for its whole life)")
    options = uwsgi.opt
    if ("http" in options or "https" in options) and not options.get("http-websockets"):
        return ("uWSGI's --http router passes the 101 on but never the client's frames unless "
                "--http-websockets is given")
    if "http11-socket" in options:
        # Seen in uWSGI 2.0.31: the worker aborts in libev once a websocket
        # on it closes, and its keep-alive would parse websocket bytes as HTTP.
        return "uWSGI's --http11-socket keeps connections for the next request: serve websockets with --http-socket"
    if "https-socket" in options:
        # The worker would hand us the raw descriptor, whose bytes are TLS records.
        return ("uWSGI's --https-socket encrypts in the worker, below the websocket codec: terminate TLS in front "
                "(nginx, or uWSGI's --https router with --http-websockets)")
    return None


#: The smallest uWSGI ``buffer-size`` that takes a request head with a few cookies.
UWSGI_BUFFER_SIZE = 16384


def uwsgi_advice(options: Dict[str, Any]) -> List[str]:
    """What in a uWSGI set-up that can serve websockets leaves clients unanswered or the worker lockable.

    ``options`` is ``uwsgi.opt`` (values are bytes, ``True`` for flags, a list if repeated).
    """
    advice = []
    size = _uwsgi_number(options.get("buffer-size"), 4096)
    if size < UWSGI_BUFFER_SIZE:
        advice.append(f"buffer-size is {size}: a request head larger than that (a few cookies) gets no answer at all; "
                      "set buffer-size = 32768")
    if "http-socket" in options and "socket-timeout" not in options:
        advice.append("--http-socket without socket-timeout: an idle connection holds a --gevent core for ever; "
                      "set socket-timeout = 10, and keep nginx (client_header_timeout) or uWSGI's --http router in front")
    return advice


def _uwsgi_number(value: Any, default: int) -> int:
    if isinstance(value, list):
        value = value[-1]
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def prepare_server() -> None:
    """At startup, under uWSGI: say why websockets cannot work, or arrange their close on exit.

    Only uWSGI can be asked about this before the first request.  A stopping
    uWSGI gevent worker ends its loop and then calls ``uwsgi.atexit``: there
    the open websockets get their 1001 close frame (the loop runs a moment
    more to send them) instead of being dropped.
    """
    try:
        import uwsgi  # importable only inside a uWSGI process
    except ImportError:
        return
    problem = _uwsgi_problem()
    if problem is not None:
        logger.warning("websocket upgrades will be refused with 501: %s", problem)
        return
    for advice in uwsgi_advice(uwsgi.opt):
        logger.warning("uWSGI: %s", advice)
    previous = getattr(uwsgi, "atexit", None)
    if getattr(previous, "_ws4redis_mw", False):
        return  # a second middleware in the same process

    def close_websockets() -> None:
        from .shutdown import close_all_websockets

        close_all_websockets()
        if previous is not None:
            previous()

    close_websockets._ws4redis_mw = True  # type: ignore[attr-defined]
    uwsgi.atexit = close_websockets


def server_kind(environ: WSGIEnvironment) -> Optional[str]:
    """Which server runs this request, as far as taking over a socket goes; ``None``: one we can't use."""
    if "uwsgi.version" in environ:
        return "uwsgi"
    if environ.get("wsgi.websocket") is not None:
        return "gevent-websocket"
    if environ.get("SERVER_SOFTWARE", "").startswith("gevent/"):
        return "pywsgi"
    return None


def already_upgraded(environ: WSGIEnvironment) -> bool:
    """True when the server sent the 101 before calling the application."""
    return server_kind(environ) == "gevent-websocket"


def check_supported(environ: WSGIEnvironment) -> None:
    """Raise :class:`NotSupported` before the handshake if :func:`accept` would."""
    kind = server_kind(environ)
    if kind is None:
        raise NotSupported(_UNSUPPORTED)
    problem = _uwsgi_problem() if kind == "uwsgi" else None
    if problem is not None:
        raise NotSupported(problem)


def accept(environ: WSGIEnvironment, start_response: StartResponse, headers: List[Tuple[str, str]]) -> Transport:
    """Complete the upgrade with ``headers`` and return the connection's transport."""
    kind = server_kind(environ)
    if kind == "gevent-websocket":
        websocket = environ["wsgi.websocket"]
        handler = websocket.handler
        websocket.closed = True  # we send the close frames, with their codes
        return _take_over(handler.rfile, handler.socket)
    if kind == "pywsgi":
        rfile = environ["wsgi.input"]  # pywsgi hands upgrade requests the raw reader
        write = start_response("101 Switching Protocols", headers)
        write(b"")  # sends the status line and headers now
        return _take_over(rfile, rfile.raw._sock)
    if kind == "uwsgi":
        import uwsgi

        # uWSGI writes its own 101 from the same key (it also echoes Origin).
        # Left empty, it would echo the client's whole Sec-WebSocket-Protocol
        # offer, so the selected one is passed (the handshake selects one
        # whenever the client offers any). Both calls find the request
        # through the current greenlet.
        subprotocol = next((value for name, value in headers if name == SUBPROTOCOL_HEADER), "")
        uwsgi.websocket_handshake(environ.get("HTTP_SEC_WEBSOCKET_KEY", ""), "", subprotocol)
        # A duplicate: the connection outlives uWSGI's close() of its own
        # descriptor when the request returns (one descriptor per socket again
        # from then on), and the request greenlet need not wait.
        return SocketTransport(gevent.socket.socket(fileno=os.dup(uwsgi.connection_fd())))
    raise NotSupported(_UNSUPPORTED)
