"""docs/migrating.md, followed as written on a ws4redis-style site.

The site is a fresh ``startproject`` made the way ws4redis 0.6's docs say:
``"ws4redis"`` in ``INSTALLED_APPS``, its settings (a ``WS4REDIS_CONNECTION``
dict, ``WS4REDIS_EXPIRE``, ``WS4REDIS_HEARTBEAT``, ``WS4REDIS_PREFIX``), its
development-server ``WSGI_APPLICATION``, its context processor, a view that
publishes with ``ws4redis.publisher.RedisPublisher`` and a template that loads
``{{ STATIC_URL }}js/ws4redis.js``.  The guide's rename block is run by bash,
its ``wsgi.py`` written, ``ws4redis_mw`` moved first as step 4 says (check
W001 warns before, not after); then ``runserver`` serves the page, the
script at its new path, and a websocket that gets what the view publishes,
and a socket opened later gets it as the kept message (``WS4REDIS_EXPIRE``).
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

from readme import block_starting_with
from websockets.sync.client import connect

from helpers import recv, user_env
from servers import BIN, ROOT, free_port

GUIDE = (ROOT / "docs" / "migrating.md").read_text()

WS4REDIS_SETTINGS = """
INSTALLED_APPS += ["ws4redis"]
WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = {"host": "127.0.0.1", "port": %(port)d, "db": 0, "password": None}
WS4REDIS_EXPIRE = 3600
WS4REDIS_HEARTBEAT = "--heartbeat--"
WS4REDIS_PREFIX = "demo"
WSGI_APPLICATION = 'ws4redis.django_runserver.application'
TEMPLATES[0]["DIRS"] = [BASE_DIR / "templates"]
TEMPLATES[0]["OPTIONS"]["context_processors"] += ["django.template.context_processors.static",
                                                  "ws4redis.context_processors.default"]
"""

VIEWS = """
from django.http import HttpResponse
from django.shortcuts import render
from ws4redis.publisher import RedisPublisher
from ws4redis.redis_store import RedisMessage


def page(request):
    return render(request, "chat.html")


def notify(request):
    RedisPublisher(facility="news", broadcast=True).publish_message(RedisMessage("hello from a view"))
    return HttpResponse("sent")
"""

TEMPLATE = """<script src="{{ STATIC_URL }}js/ws4redis.js"></script>
<script>var uri = "{{ WEBSOCKET_URI }}news?subscribe-broadcast";</script>
"""

WSGI = """import os
from django.core.wsgi import get_wsgi_application
from ws4redis.uwsgi_runserver import uWSGIWebsocketServer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
_django_app = get_wsgi_application()
_websocket_app = uWSGIWebsocketServer()


def application(environ, start_response):
    if environ.get("PATH_INFO").startswith("/ws/"):
        return _websocket_app(environ, start_response)
    return _django_app(environ, start_response)
"""


def ws4redis_site(home: Path, redis_port: int) -> Path:
    subprocess.run([str(BIN / "django-admin"), "startproject", "mysite"], cwd=home, env=user_env(), check=True)
    root = home / "mysite"
    with open(root / "mysite" / "settings.py", "a") as file:
        file.write(WS4REDIS_SETTINGS % {"port": redis_port})
    (root / "mysite" / "views.py").write_text(VIEWS)
    with open(root / "mysite" / "urls.py", "a") as file:
        file.write("\nfrom mysite import views\nurlpatterns += [path('', views.page), path('notify/', views.notify)]\n")
    (root / "mysite" / "wsgi.py").write_text(WSGI)
    (root / "templates").mkdir()
    (root / "templates" / "chat.html").write_text(TEMPLATE)
    return root


def check_output(root: Path) -> str:
    done = subprocess.run(["./manage.py", "check"], cwd=root, env=user_env(), capture_output=True, text=True)
    return done.stdout + done.stderr


def test_a_ws4redis_site_moves_over_by_the_guides_steps(tmp_path, redis_server):
    root = ws4redis_site(tmp_path, redis_server.port)
    # Step 2, as written in the guide.
    subprocess.run(["bash", "-c", block_starting_with(GUIDE, "# 2. the renames")], cwd=root, env=user_env(), check=True)
    # Step 3: the guide's wsgi.py.
    (root / "mysite" / "wsgi.py").write_text(block_starting_with(GUIDE, "# mysite/wsgi.py"))
    settings = (root / "mysite" / "settings.py").read_text()
    assert "ws4redis." not in settings and "django_runserver" not in settings and '"ws4redis_mw"' in settings
    # Step 4: check W001 says what to do; doing it silences it.
    assert "ws4redis_mw.W001" in check_output(root)
    (root / "mysite" / "settings.py").write_text(
        settings.replace('INSTALLED_APPS += ["ws4redis_mw"]', 'INSTALLED_APPS.insert(0, "ws4redis_mw")'))
    assert "ws4redis_mw.W001" not in check_output(root)
    subprocess.run(["./manage.py", "migrate", "-v0"], cwd=root, env=user_env(), check=True)

    port = free_port()
    server = subprocess.Popen(["./manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=root, env=user_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        page = _get(base + "/")
        assert '/static/ws4redis_mw/ws4redis.js"' in page and f'"ws://127.0.0.1:{port}/ws/news?subscribe-broadcast"' in page
        assert "function" in _get(base + "/static/ws4redis_mw/ws4redis.js")
        with connect(f"ws://127.0.0.1:{port}/ws/news?subscribe-broadcast", open_timeout=10) as ws:
            assert _get(base + "/notify/") == "sent"
            assert recv(ws) == "hello from a view"
        with connect(f"ws://127.0.0.1:{port}/ws/news?subscribe-broadcast", open_timeout=10) as later:
            assert recv(later) == "hello from a view"  # the kept message, WS4REDIS_EXPIRE = 3600
        assert redis_server.client().get("demo:broadcast:news") == b"hello from a view"  # ws4redis' key layout
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0].decode(errors="replace")
    assert "Traceback" not in output, output


def _get(url: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

