"""``./manage.py runserver`` that also serves websockets under ``WEBSOCKET_URL``.

Django's development server (wsgiref) cannot hand a connection over to a
websocket, so this command keeps everything of Django's ``runserver`` (the
autoreloader, system checks, the migrations warning, the banner, the flags,
and ``django.contrib.staticfiles``' static files when that app is installed)
and changes one thing: the server.  Django's ``run()`` takes a ``server_cls``;
ours, :class:`GeventServer`, serves the same handler with gevent's pywsgi,
wrapped in :class:`~ws4redis_mw.middleware.WebSocketMiddleware` unless
``WSGI_APPLICATION`` already is.  Requests are logged to ``django.server`` as
Django logs them.

``ws4redis_mw`` must come before ``django.contrib.staticfiles`` in
``INSTALLED_APPS``: Django takes a command from the first app that has it.

Stopping and reloading: open websockets are closed with 1001 (going away) so
that clients reconnect, then the process ends.

* With the autoreloader (the default) the server runs in a thread of the
  reloader's child process, whose main thread watches files and exits the
  process on a change (``sys.exit(3)``), on SIGTERM and on Ctrl-C; an
  ``atexit`` hook asks the server's thread to close the websockets and waits
  for them, at most :data:`CLOSE_WAIT` seconds.  On Ctrl-C the asking starts
  in the signal handler already: the reloader kills its child 0.25 s later.  A SIGTERM sent to the
  reloader's parent alone makes Django kill the child outright: clients then
  see 1006 and reconnect all the same.
* With ``--noreload`` the server runs in the main thread and handles SIGINT
  and SIGTERM itself.

Development only.  Nothing is monkey-patched (the autoreloader needs real
threads): every request and websocket is a greenlet of one thread, so Django
code (views, templates, the ORM, the session lookup of a websocket handshake)
blocks all the others while it runs, and the greenlets share that thread's
database connections.  That is fine for one developer; in production use
``python -m ws4redis_mw.serve``, gunicorn or uWSGI.  ``--nothreading`` is
accepted and changes nothing: there are no threads per request to turn off.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Set, Tuple, cast

import gevent
import gevent.socket
from django.apps import apps
from django.utils import autoreload
from gevent import pywsgi

from ws4redis_mw.handlers import handshake_timeout, with_timeout
from ws4redis_mw.middleware import WebSocketMiddleware
from ws4redis_mw.settings import load
from ws4redis_mw.shutdown import close_all_websockets

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment
    from greenlet import greenlet

if apps.is_installed("django.contrib.staticfiles"):
    from django.contrib.staticfiles.management.commands.runserver import Command as BaseRunserver
else:
    from django.core.management.commands.runserver import Command as BaseRunserver

__all__ = ["Command", "GeventServer", "CLOSE_WAIT"]

logger = logging.getLogger("django.server")

#: Seconds open websockets get, at a reload or stop, to answer the 1001 close
#: frame before the process goes on ending.
CLOSE_WAIT = 3.0
#: Seconds requests still running after that get before they are cut (``--noreload`` only).
STOP_TIMEOUT = 1.0


def serves_websockets(app: Any) -> bool:
    """True if ``app`` is, or wraps, a :class:`WebSocketMiddleware`."""
    for _ in range(20):  # middleware chains are short; this only guards against cycles
        if app is None:
            return False
        if isinstance(app, WebSocketMiddleware):
            return True
        # StaticFilesHandler keeps its inner app as .application, werkzeug-style middleware as .app.
        app = getattr(app, "application", None) or getattr(app, "app", None)
    return False


class RequestHandler(pywsgi.WSGIHandler):
    """pywsgi's handler, logging like Django's and keeping track of the open websockets."""

    server: "_PyWSGIServer"

    def run_application(self) -> None:
        environ = cast("WSGIEnvironment", self.environ)  # set before run_application is called
        if environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            return super().run_application()
        current = gevent.getcurrent()
        self.server.websockets.add(current)
        try:
            super().run_application()
        finally:
            self.server.websockets.discard(current)

    def log_request(self) -> None:
        # As django.core.servers.basehttp.WSGIRequestHandler.log_message: the
        # logger "django.server", its level by status, status_code for colours.
        status = (getattr(self, "_orig_status", None) or "-").split()[0]
        extra = {"request": self.socket, "server_time": time.strftime("%d/%b/%Y %H:%M:%S")}
        level = logging.INFO
        if status.isdigit():
            code = extra["status_code"] = int(status)
            level = logging.ERROR if code >= 500 else logging.WARNING if code >= 400 else logging.INFO
        logger.log(level, '"%s" %s %s', self.requestline or "", status, self.response_length or "-", extra=extra)


class _PyWSGIServer(pywsgi.WSGIServer):
    websockets: Set[greenlet]


class GeventServer:
    """What Django's ``basehttp.run()`` asks of its ``server_cls``, done with gevent's pywsgi.

    The listening socket is bound in the constructor, so Django's messages for
    a port in use or an address it cannot assign stay as they are.  ``run()``
    mixes ``socketserver.ThreadingMixIn`` in unless ``--nothreading``; none of
    its methods is called here.
    """

    def __init__(self, server_address: Tuple[str, int], handler_class: Any = None, ipv6: bool = False, **_: Any):
        sock = gevent.socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(server_address)
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        self.socket = sock
        self.server_port: int = sock.getsockname()[1]
        self.application: Optional[WSGIApplication] = None

    def set_app(self, application: WSGIApplication) -> None:
        self.application = application

    def serve_forever(self) -> None:
        handler_class = with_timeout(RequestHandler, handshake_timeout())
        server = _PyWSGIServer(self.socket, self.application, handler_class=handler_class, log=None)
        server.websockets = set()
        stopped_by: List[Optional[int]] = []

        def close_websockets() -> None:
            # The hub and the sockets belong to this thread's gevent loop: call only from it.
            close_all_websockets()

        def stop(signum: Optional[int]) -> None:
            if signum is not None:
                stopped_by.append(signum)
            close_websockets()
            server.stop(timeout=STOP_TIMEOUT)

        if threading.current_thread() is threading.main_thread():
            # --noreload: signals arrive in this thread, whose loop is gevent's default one.
            handlers = [gevent.signal_handler(signum, stop, signum) for signum in (signal.SIGINT, signal.SIGTERM)]
            try:
                server.serve_forever()
            finally:
                for handler in handlers:
                    handler.cancel()
            if signal.SIGINT in stopped_by:
                raise KeyboardInterrupt  # Django's inner_run prints its shutdown message and exits 0
            return

        # Under the autoreloader the main thread ends the process.  From its
        # exit path, ask this thread to close the websockets and stop, and
        # wait for the thread to end: a daemon thread still inside gevent's
        # loop when the interpreter finalizes can crash the process (it did:
        # SIGSEGV, once in a few reloads).
        loop = gevent.get_hub().loop
        thread = threading.current_thread()

        def ask_to_stop() -> None:  # from the main thread only
            if not stopped_by:
                stopped_by.append(None)
                loop.run_callback_threadsafe(gevent.spawn, stop, None)

        def at_exit() -> None:
            ask_to_stop()
            thread.join(CLOSE_WAIT + STOP_TIMEOUT + 1.0)

        _ask_to_stop.append(ask_to_stop)
        atexit.register(at_exit)
        try:
            server.serve_forever()
        finally:
            atexit.unregister(at_exit)
            _ask_to_stop.remove(ask_to_stop)


#: Under the autoreloader: how the main thread asks the server's thread to stop.
_ask_to_stop: List[Callable[[], None]] = []


def _interrupt(signum: int, frame: Optional[FrameType]) -> None:
    """Ctrl-C in the reloader's child: start closing the websockets now, then raise KeyboardInterrupt.

    Django's reloader (the parent) kills the child 0.25 s after its own Ctrl-C
    (``subprocess.Popen.wait``'s grace for SIGINT); closing only from the exit
    path, after the main thread has unwound, was sometimes too late for the
    1001 close frames to leave.
    """
    for ask in list(_ask_to_stop):
        ask()
    signal.default_int_handler(signum, frame)


class Command(BaseRunserver):  # type: ignore[misc]  # Django has no type information here
    help = BaseRunserver.help.rstrip(".") + ", with websockets under WEBSOCKET_URL (gevent's pywsgi)."
    server_cls = GeventServer

    def run(self, **options: Any) -> None:
        if options.get("use_reloader") and os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true":
            signal.signal(signal.SIGINT, _interrupt)  # the reloader's child, in its main thread
        super().run(**options)

    def get_handler(self, *args: Any, **options: Any) -> WSGIApplication:
        handler = super().get_handler(*args, **options)
        return handler if serves_websockets(handler) else WebSocketMiddleware(handler)

    def on_bind(self, server_port: int) -> None:
        super().on_bind(server_port)
        self.stdout.write(f"Websockets under {load().websocket_url} (ws4redis_mw, on gevent's pywsgi).")
