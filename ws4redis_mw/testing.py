"""Testing a site's websockets from its own test suite: a live server that speaks websockets, and a small client::

    from ws4redis_mw.testing import WebSocketLiveServerTestCase

    class ChatTests(WebSocketLiveServerTestCase):
        def test_the_lobby_hears_a_view(self):
            user = User.objects.create_user("alice")
            with self.websocket("/ws/lobby?subscribe-broadcast", user=user) as ws:
                RedisPublisher(facility="lobby", broadcast=True).publish_message(RedisMessage("hi"))
                assert ws.receive() == "hi"

Design rules of this module:

* **The site as it is served.**  The live server runs ``WSGI_APPLICATION``
  (Django's ``get_internal_wsgi_application()``) under gevent's pywsgi, with
  websockets, on the test database; if that application is not wrapped in
  :class:`~ws4redis_mw.WebSocketMiddleware` it is wrapped here.  The
  middleware is made anew for each live server, so settings overridden on
  the test class (``@override_settings``) apply to it; settings changed
  inside one test apply to ``RedisPublisher`` (the process's settings are
  read again on Django's ``setting_changed``) but not to the server already
  running.
* **Its own thread, its own gevent hub.**  Django's ``LiveServerTestCase``
  serves from a thread; so does this one, with gevent's loop in that thread
  (gevent keeps one per thread), so the test process needs no monkey-patching.
  Redis is whatever ``WS4REDIS_CONNECTION`` names (the hub's connections use
  gevent sockets of their own).  When the server stops, its websockets get
  1001 and its Redis hub is stopped and forgotten, so the next live server
  starts a fresh one.
* **Redis is isolated like the database.**  The tests of one class (or one
  pytest test) use a ``WS4REDIS_PREFIX`` of their own, and its keys are
  deleted after each test, so a message kept by one test is not received by
  the next (:class:`RedisIsolation`).
* **A client that does what a page does.**  :func:`connect` logs ``user``
  in through Django's test client (``force_login``) or takes a test client
  that already is, sends its session cookie and a same-origin ``Origin``,
  and skips the heartbeat string in what it receives.  It needs the
  ``websockets`` package (``pip install 'ws4redis_mw[testing]'``).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

from django.test import LiveServerTestCase, override_settings
from django.test.testcases import LiveServerThread

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = ["WebSocketLiveServerTestCase", "WebSocketLiveServerThread", "RedisIsolation", "TestWebSocket", "LiveServer", "connect",
           "ws_live_server"]

#: Seconds :meth:`TestWebSocket.receive` waits by default.
RECEIVE_TIMEOUT = 5.0


def site_application(static_handler: Any) -> "WSGIApplication":
    """``WSGI_APPLICATION`` served as the live server does: static files, and a fresh middleware outside.

    A middleware made at import (in wsgi.py) holds the settings of that
    moment, so the application inside it is wrapped anew.
    """
    from django.core.servers.basehttp import get_internal_wsgi_application

    from .middleware import WebSocketMiddleware

    app = get_internal_wsgi_application()
    return WebSocketMiddleware(static_handler(app.app if isinstance(app, WebSocketMiddleware) else app))


class WebSocketLiveServerThread(LiveServerThread):  # type: ignore[misc]
    """Django's live server thread, serving the site with websockets under gevent's pywsgi."""

    port: int
    httpd: Any

    def run(self) -> None:
        from django.db import connections
        from gevent import get_hub, pywsgi

        from .handlers import handshake_timeout, with_timeout

        if self.connections_override:
            for alias, conn in self.connections_override.items():
                connections[alias] = conn
        try:
            app = site_application(self.static_handler)
            self.httpd = pywsgi.WSGIServer((self.host, self.port), app, log=None,
                                           handler_class=with_timeout(pywsgi.WSGIHandler, handshake_timeout()))
            self.httpd.init_socket()
            self.port = self.httpd.server_port
            # terminate() runs in the test's thread: it wakes this loop through an async watcher.
            self._wakeup = get_hub().loop.async_()
            self._wakeup.start(self._shut_down)
            self.is_ready.set()
            self.httpd.serve_forever()
        except Exception as exc:
            self.error = exc
            self.is_ready.set()
        finally:
            connections.close_all()

    def _shut_down(self) -> None:
        import gevent

        gevent.spawn(self._close_everything)

    def _close_everything(self) -> None:
        from .hub import discard_process_hubs
        from .shutdown import close_all_websockets

        close_all_websockets()
        self.httpd.stop(timeout=1)
        discard_process_hubs()

    def terminate(self) -> None:
        wakeup = getattr(self, "_wakeup", None)
        if wakeup is not None:
            wakeup.send()
        self.join(10)


class RedisIsolation:
    """A ``WS4REDIS_PREFIX`` of its own for a group of tests, and the deletion of its keys after each test.

    Kept messages and history would otherwise carry over from one test to the
    next (and from one run to the next), as a database without rollback
    would.  The prefix is the site's own with ``test-<random>`` added, so
    tests can share a Redis with anything else.
    """

    def __init__(self) -> None:
        from django.conf import settings

        own = getattr(settings, "WS4REDIS_PREFIX", None)
        self.prefix = f"{own}:test-{uuid.uuid4().hex[:12]}" if own else f"test-{uuid.uuid4().hex[:12]}"
        self._override = override_settings(WS4REDIS_PREFIX=self.prefix)

    def enable(self) -> None:
        self._override.enable()

    def disable(self) -> None:
        self._override.disable()

    def flush(self) -> None:
        """Delete every key under the prefix."""
        from .connection import get_client
        from .settings import process_settings

        client = get_client(process_settings().connection)
        keys = list(client.scan_iter(match=f"{self.prefix}:*", count=1000))
        for key in keys:  # one by one: under Redis Cluster the keys live in many slots
            client.delete(key)


class WebSocketLiveServerTestCase(LiveServerTestCase):  # type: ignore[misc]
    """A ``LiveServerTestCase`` (transactional, ``live_server_url``) whose server also serves websockets.

    The class's tests use a Redis prefix of their own, emptied after each
    test (:class:`RedisIsolation`).
    """

    server_thread_class = WebSocketLiveServerThread
    redis_isolation: RedisIsolation

    @classmethod
    def setUpClass(cls) -> None:
        cls.redis_isolation = RedisIsolation()
        cls.redis_isolation.enable()  # before the server starts: its middleware reads the prefix then
        try:
            super().setUpClass()
        except BaseException:
            cls.redis_isolation.disable()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            super().tearDownClass()
        finally:
            cls.redis_isolation.disable()

    def setUp(self) -> None:
        super().setUp()
        self.addCleanup(self.redis_isolation.flush)

    def websocket(self, path: str, user: Any = None, client: Any = None, **kwargs: Any) -> "TestWebSocket":
        """A websocket to ``path`` of the live server, as ``user`` or ``client``'s session; closed after the test."""
        ws = connect(self.live_server_url, path, user=user, client=client, **kwargs)
        self.addCleanup(ws.close)
        return ws


class TestWebSocket:
    """A connected websocket (a ``websockets`` sync client) whose :meth:`receive` skips heartbeats."""

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(self, connection: Any, heartbeat: Optional[str]):
        self.connection = connection
        self.heartbeat = heartbeat

    def send(self, message: Any) -> None:
        self.connection.send(message)

    def receive(self, timeout: float = RECEIVE_TIMEOUT) -> Any:
        """The next message (``str`` or ``bytes``) within ``timeout`` seconds, heartbeats skipped; ``TimeoutError`` if none."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            message = self.connection.recv(timeout=max(0.0, deadline - time.monotonic()))
            if message != self.heartbeat:
                return message

    def receive_all(self, timeout: float = 0.5) -> List[Any]:
        """Every message that arrives until ``timeout`` seconds pass without one."""
        messages = []
        while True:
            try:
                messages.append(self.receive(timeout))
            except TimeoutError:
                return messages

    @property
    def close_code(self) -> Optional[int]:
        """The close code once the connection is closed (``None`` while open)."""
        code: Optional[int] = self.connection.close_code
        return code

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "TestWebSocket":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connect(base_url: str, path: str, user: Any = None, client: Any = None, headers: Optional[Dict[str, str]] = None,
            **kwargs: Any) -> TestWebSocket:
    """Open a websocket to ``path`` of the server at ``base_url`` (``http://host:port``).

    ``user``: log that user in first (a session in the test database);
    ``client``: a ``django.test.Client`` whose session to use.  Other keyword
    arguments go to ``websockets.sync.client.connect`` (``subprotocols``, ...).
    """
    from django.conf import settings
    from django.test import Client
    from websockets.sync.client import connect as ws_connect

    from .settings import process_settings

    if user is not None:
        client = client or Client()
        client.force_login(user)
    sent = {"Origin": base_url, **(headers or {})}
    cookie = client.cookies.get(settings.SESSION_COOKIE_NAME) if client is not None else None
    if cookie is not None:
        sent["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={cookie.value}"
    url = base_url.replace("http", "ws", 1) + path
    connection = ws_connect(url, additional_headers=sent, open_timeout=kwargs.pop("open_timeout", 5), **kwargs)
    return TestWebSocket(connection, process_settings().heartbeat)


def _serve_live(request: Any) -> Iterator["LiveServer"]:
    """pytest-django users: a live server with websockets (``.url``, ``.websocket(path, user=...)``).

    On the transactional test database, as pytest-django's ``live_server``.
    Enable it with ``pytest_plugins = ["ws4redis_mw.testing"]`` in the
    top-level ``conftest.py`` (docs/testing.md).
    """
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.db import connections
    from django.test.utils import modify_settings

    request.getfixturevalue("transactional_db")
    isolation = RedisIsolation()
    isolation.enable()
    # As LiveServerTestCase does: its host passes ALLOWED_HOSTS (the websocket path checks it too).
    hosts = modify_settings(ALLOWED_HOSTS={"append": "localhost"})
    hosts.enable()
    # As LiveServerTestCase does: an in-memory SQLite database is shared with the server's thread.
    overrides = {conn.alias: conn for conn in connections.all() if conn.vendor == "sqlite" and conn.is_in_memory_db()}
    thread = WebSocketLiveServerThread("localhost", StaticFilesHandler, connections_override=overrides, port=0)
    thread.daemon = True
    for conn in overrides.values():
        conn.inc_thread_sharing()
    thread.start()
    thread.is_ready.wait()
    try:
        if thread.error:
            raise thread.error
        yield LiveServer(f"http://localhost:{thread.port}")
    finally:
        thread.terminate()
        for conn in overrides.values():
            conn.dec_thread_sharing()
        isolation.flush()
        isolation.disable()
        hosts.disable()


class LiveServer:
    """What the ``ws_live_server`` fixture gives a test: the server's ``url``, and :meth:`websocket` to open one."""

    def __init__(self, url: str):
        self.url = url

    def websocket(self, path: str, **kwargs: Any) -> TestWebSocket:
        """A websocket to ``path`` of this server (:func:`connect`'s keyword arguments)."""
        return connect(self.url, path, **kwargs)

    def __str__(self) -> str:
        return self.url


try:
    import pytest
except ImportError:  # the fixture is for pytest users; the test case class needs no pytest
    pass
else:
    ws_live_server = pytest.fixture(name="ws_live_server")(_serve_live)
