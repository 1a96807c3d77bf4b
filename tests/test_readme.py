"""The README's Quick start, followed as written on a new project, under every server of "Serving it".

A fresh ``django-admin startproject mysite`` gets the Quick start's snippets,
taken from README.md itself (so this fails when the README drifts): the
settings appended to ``mysite/settings.py``, ``mysite/wsgi.py`` replaced,
the URL appended to ``mysite/urls.py``, the template written.  Then each row
of the "Serving it" table is run as written, from the project directory,
with the virtualenv's ``bin`` first on PATH (an activated virtualenv) and
nothing else set up.  Each must serve the page, ``ws4redis.js``, and a
websocket (the ``websockets`` client) that receives the message the
README's publisher snippet sends from ``manage.py shell``.

Then the production path the Quick start describes: ``DEBUG = False`` (in a
settings module importing the Quick start's), where check W002 warns until
``collectstatic``, after which our runner and gunicorn serve the collected
script through WhiteNoise.

What the test changes in what it reads, and why:

* ``8000`` in a command becomes a free port (the machine is shared);
* ``redis://localhost:6379/0`` becomes this module's own redis-server;
* the nginx row has no single command (it points to docs/deployment.md);
  the same nginx + uWSGI set-up is the ``nginx-uwsgi`` mode of
  tests/servers.py, which the protocol suite runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest
from readme import first_code_span, section, table

from conftest import require
from helpers import PUBLISH, quick_start_project, user_env
from servers import RedisServer, free_port, redis_server_binary, uwsgi_missing, wait_for_port

ROWS = table(section("Serving it"))
#: server -> command, for the rows whose command cell starts with one (the nginx row says "see ...").
COMMANDS = {row["server"]: first_code_span(row["command"]) for row in ROWS if row["command"].startswith("`")}


def test_only_the_nginx_row_has_no_command():
    assert [row["server"] for row in ROWS if row["server"] not in COMMANDS] == ["nginx + 2 × uWSGI"]
    assert len(COMMANDS) == 5


def test_every_command_names_the_project_module_and_port():
    for server, command in COMMANDS.items():
        assert "8000" in command, server
        if server != "development":
            assert "mysite.wsgi:application" in command, server


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    require(redis_server_binary() is not None, "redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("readme-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory, redis):
    """``django-admin startproject mysite`` with the Quick start applied, migrated."""
    return quick_start_project(tmp_path_factory.mktemp("readme"), redis.url)


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


@contextlib.contextmanager
def serving(server: str, project, tmp_path, env=None):
    """Run the README's command for ``server`` in ``project``; yield its base URL; check its output after."""
    if server == "uWSGI":
        require(uwsgi_missing() is None, str(uwsgi_missing()))
    port = free_port()
    command = COMMANDS[server].replace("8000", str(port))
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        # Its own session, so that the whole group (runserver's reloader child,
        # gunicorn's and uWSGI's workers) is stopped by the one ID we started.
        proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=project, env={**user_env(), **(env or {})},
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_port(port, proc, timeout=30)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_group(proc)
    output = log_path.read_text(errors="replace")
    assert "MonkeyPatchWarning" not in output, output
    assert "Traceback" not in output, output


def script_of(page: str) -> str:
    script = re.search(r'<script src="([^"]+)"', page).group(1)
    assert script.endswith("ws4redis_mw/ws4redis.js"), script
    return script


@pytest.mark.parametrize("server", list(COMMANDS))
def test_quick_start_page_script_and_websocket(server, project, redis, tmp_path):
    from websockets.sync.client import connect

    redis.client().flushall()  # no message kept from the previous server's run
    with serving(server, project, tmp_path) as base:
        status, page = get(f"{base}/")
        assert status == 200, page
        status, body = get(base + script_of(page))
        assert status == 200 and "WS4Redis" in body
        uri = re.search(r'uri: "([^"]+)"', page).group(1).replace("&amp;", "&")
        assert uri.startswith(base.replace("http:", "ws:") + "/ws/foobar?"), uri
        with connect(uri, open_timeout=10, close_timeout=2) as ws:
            subprocess.run(["./manage.py", "shell", "-c", PUBLISH], cwd=project, env=user_env(), check=True, timeout=60)
            assert ws.recv(timeout=10) == "Hello"


#: The Quick start's project with production's DEBUG = False (and the hosts that then must be allowed).
PRODUCTION = """from .settings import *  # noqa
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
"""


def production(project) -> dict:
    """Write mysite/production.py; the environment that selects it."""
    (project / "mysite" / "production.py").write_text(PRODUCTION)
    return {**user_env(), "DJANGO_SETTINGS_MODULE": "mysite.production"}


def test_with_debug_off_the_check_warns_until_collectstatic(project):
    env = production(project)
    shutil.rmtree(project / "staticfiles", ignore_errors=True)
    check = subprocess.run(["./manage.py", "check"], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert "ws4redis_mw.W002" in check.stderr + check.stdout
    subprocess.run(["./manage.py", "collectstatic", "--noinput", "-v0"], cwd=project, env=env, check=True, timeout=60)
    check = subprocess.run(["./manage.py", "check"], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "W002" not in check.stderr + check.stdout, check.stderr


@pytest.mark.parametrize("server", ["gevent pywsgi", "gunicorn"])
def test_with_debug_off_the_collected_script_is_served(server, project, tmp_path):
    """The Quick start's production path: collectstatic, then WhiteNoise serves the script from STATIC_ROOT."""
    env = production(project)
    subprocess.run(["./manage.py", "collectstatic", "--noinput", "-v0"], cwd=project, env=env, check=True, timeout=60)
    with serving(server, project, tmp_path, env={"DJANGO_SETTINGS_MODULE": "mysite.production"}) as base:
        status, page = get(f"{base}/")
        assert status == 200, page
        status, body = get(base + script_of(page))
        assert status == 200 and "WS4Redis" in body


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group we started, then SIGKILL to whatever of it is left after 10 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        proc.poll()
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(5)
