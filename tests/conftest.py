"""Fixtures: a real redis-server, the test project served by every server mode, clients.

Nothing is mocked: redis-server and the servers are processes on 127.0.0.1,
and the websocket client is the ``websockets`` package.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from typing import Optional

import pytest

from servers import PYTHON, ROOT, SERVER_MODES, RedisServer, Server, redis_server_binary

IN_CI = os.environ.get("CI") == "true"


#: The fast runs (noxfile.py) start no server process: what needs a server skips there.
FAST_ONLY = os.environ.get("WS4REDIS_FAST_TESTS") == "1"


def require(condition: bool, reason: str) -> None:
    """Skip when a tool is missing, except under CI=true (but for the fast runs), where nothing may be skipped."""
    if not condition:
        if IN_CI and not FAST_ONLY:
            pytest.fail(f"required under CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("ws4redis")


@pytest.fixture(scope="session")
def redis_server(workdir):
    require(redis_server_binary() is not None, "redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(workdir)
    server.start()
    # The test process itself uses the project's settings too (publisher tests).
    os.environ["WS4REDIS_TEST_REDIS"] = server.url
    os.environ["WS4REDIS_TEST_DB"] = str(workdir / "db.sqlite3")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_setup(redis_server):
    import django

    django.setup()
    subprocess.run([PYTHON, "-m", "django", "migrate", "-v0"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of the test's own (its clients and channels are the test's alone)."""
    require(redis_server_binary() is not None, "redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def start_server(mode, redis_url, workdir, env=None) -> Server:
    reason = mode.unavailable()
    require(reason is None, f"{mode.name}: {reason}")
    server = Server(mode, redis_url, workdir, env)
    server.start()
    return server


@pytest.fixture(scope="session", params=[mode.name for mode in SERVER_MODES])
def server(request, redis_server, django_setup, workdir):
    mode = next(m for m in SERVER_MODES if m.name == request.param)
    server = start_server(mode, redis_server.url, workdir)
    yield server
    server.stop()


@pytest.fixture
def serve(redis_server, django_setup, workdir):
    """serve(mode_name="pywsgi", **WS4REDIS_TEST_* env) starts a server of the test project; all stopped after the test."""
    modes = {mode.name: mode for mode in SERVER_MODES}
    started = []

    def _serve(mode_name: str = "pywsgi", **env: str) -> Server:
        server = start_server(modes[mode_name], redis_server.url, workdir, env)
        started.append(server)
        return server

    yield _serve
    for server in started:
        server.stop()


class Http:
    """A tiny HTTP client with a cookie jar (a logged-in browser, minus the browser)."""

    def __init__(self, base: str):
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def request(self, path: str, data: Optional[bytes] = None, headers: Optional[dict] = None):
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def post_json(self, path: str, payload: dict):
        return self.request(path, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    def login(self, username: str, groups: str = "") -> dict:
        status, _, body = self.request("/login", urllib.parse.urlencode({"username": username, "groups": groups}).encode())
        assert status == 200, body
        return json.loads(body)

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)

    def publish(self, facility: str, message: str, **audience) -> None:
        status, _, body = self.post_json("/publish", {"facility": facility, "message": message, **audience})
        assert status == 200, body


@pytest.fixture
def http(server):
    return Http(server.http)


@pytest.fixture
def connect(server):
    """Open a websocket to ``server``: connect(path, cookie=None, **kwargs); closed after the test."""
    from websockets.sync.client import connect as ws_connect

    opened = []

    def _connect(path: str, cookie: Optional[str] = None, **kwargs):
        headers = kwargs.pop("additional_headers", {})
        if cookie:
            headers["Cookie"] = cookie
        ws = ws_connect(server.ws + path, legacy=True, open_timeout=5, close_timeout=2, additional_headers=headers, **kwargs)
        opened.append(ws)
        return ws

    yield _connect
    for ws in opened:
        ws.close()
