"""``manage.py runserver`` (ws4redis_mw/management/commands/runserver.py) with the chat example.

The command is started as a developer types it, autoreloader on, against a
copy of ``examples/chatserver`` and a real redis-server.  The protocol suite
runs against it too (the ``runserver`` mode of ``tests/servers.py``).
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from typing import Callable

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from example import copy_example, example_server

TIMEOUT = 5


@pytest.fixture(scope="module")
def project(redis_server, workdir):
    return copy_example(workdir / "chatserver-runserver", redis_server.url)


@pytest.fixture
def start(project, redis_server, workdir):
    """start(mode) -> a running server of the example; stopped after the test."""
    started = []

    def _start(mode: str = "runserver-autoreload", *options: str, env=None):
        server = example_server(mode, project, redis_server.url, workdir, options, env)
        started.append(server)
        server.start()
        return server

    yield _start
    for server in started:
        server.stop()


def get(url: str):
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def ws_connect(server, path: str):
    return connect(server.ws + path, open_timeout=TIMEOUT, close_timeout=2)


def assert_round_trip(server, text: str) -> None:
    with ws_connect(server, "/ws/chat?subscribe-broadcast") as listener, ws_connect(server, "/ws/chat?publish-broadcast") as sender:
        sender.send(text)
        assert listener.recv(timeout=TIMEOUT) == text


def close_code(ws, timeout: float, between: Callable[[], None] = lambda: None) -> int:
    """The code of the close frame ``ws`` gets within ``timeout`` seconds (heartbeats are skipped).

    ``between`` runs every half second meanwhile.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        between()
        try:
            ws.recv(timeout=0.5)
        except TimeoutError:
            pass
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "connection dropped without a close frame"
            return closed.rcvd.code
    raise AssertionError(f"not closed within {timeout}s")


def wait_for_log(server, text: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log_text():
        assert time.monotonic() < deadline, f"{text!r} not in the log:\n{server.log_text()}"
        time.sleep(0.05)


def test_runserver_serves_pages_static_files_and_websockets(start):
    server = start()
    status, _, body = get(server.http + "/")
    assert status == 200
    # The context processor's URI, as the page's script uses it.
    assert f'"ws://127.0.0.1:{server.port}/ws/chat?subscribe-broadcast' in body.decode()
    status, content_type, body = get(server.http + "/static/chat/chat.css")
    assert status == 200 and content_type.startswith("text/css") and b".messages" in body
    status, _, body = get(server.http + "/static/ws4redis_mw/ws4redis.js")
    assert status == 200 and b"WS4Redis" in body
    assert_round_trip(server, "hello through runserver")
    # Requests are logged as Django's runserver logs them.
    wait_for_log(server, '"GET /static/chat/chat.css HTTP/1.1" 200')


def test_static_files_are_served_by_the_staticfiles_runserver(start):
    # Without DEBUG the example's own static URLs are gone: only the handler
    # of django.contrib.staticfiles' runserver serves them, with --insecure.
    server = start("runserver", "--insecure", env={"DJANGO_DEBUG": "0"})
    status, content_type, _ = get(server.http + "/static/chat/chat.css")
    assert status == 200 and content_type.startswith("text/css")
    assert_round_trip(server, "hello without DEBUG")


def test_reload_closes_websockets_with_1001_and_serves_again(start, project):
    server = start()
    child_before = server.pids()[1:]
    ws = ws_connect(server, "/ws/chat?subscribe-broadcast")
    views = project / "chat" / "views.py"

    def save_again() -> None:
        # Again and again: a change made before the reloader first looked at
        # the file goes unnoticed, as for a developer.
        mtime = views.stat().st_mtime + 1
        os.utime(views, (mtime, mtime))

    assert close_code(ws, timeout=20, between=save_again) == 1001
    deadline = time.monotonic() + 30
    while True:
        try:
            assert_round_trip(server, "hello after the reload")
            break
        except (OSError, ConnectionClosed, TimeoutError):
            assert time.monotonic() < deadline, "the reloaded server never served a websocket"
            time.sleep(0.2)
    assert server.pids()[1:] != child_before, "no new child process: that was no reload"
    assert server.proc.poll() is None


def test_ctrl_c_closes_websockets_with_1001_under_the_autoreloader(start):
    server = start()
    ws = ws_connect(server, "/ws/chat?subscribe-broadcast")
    for pid in server.pids():  # a terminal's Ctrl-C reaches the reloader and its child
        os.kill(pid, signal.SIGINT)
    assert close_code(ws, timeout=10) == 1001
    assert server.proc.wait(15) == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_signal_closes_websockets_with_1001_with_noreload(start, signum):
    server = start("runserver")
    ws = ws_connect(server, "/ws/chat?subscribe-broadcast")
    started = time.monotonic()
    server.proc.send_signal(signum)
    assert close_code(ws, timeout=10) == 1001
    assert server.proc.wait(15) == 0
    assert time.monotonic() - started < 5
