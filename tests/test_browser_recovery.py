"""Recovery in a real browser: the chat page gets back what was published while its server was away.

The chat example's pages open their websocket with the ``recover`` flag
(ws4redis.js keeps each channel's position and sends it back on reconnect;
the server replays from its history, ``WS4REDIS_HISTORY``).  Headless
Chromium as in tests/test_browser.py, whose browser fixture this module
shares; the example under pywsgi, on a redis-server of the module's own;
publications made by Django code (``RedisPublisher`` in ``manage.py shell``)
while the server is stopped.  The last test restarts that redis-server (no
persistence): it runs last.  Screenshots go to ``tests/_artifacts/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from typing import Dict, List, Optional

import pytest
from test_browser import ARTIFACTS, WAIT, browse, browser, messages, open_chat  # noqa: F401 (browse, browser: fixtures)

from example import copy_example, example_env, example_server
from servers import PYTHON, RedisServer

#: Milliseconds a page gets to reconnect: its backoff grows while the server is away.
RECONNECT = 30_000
#: What the example's settings.py gets in the tests' copy: the history setting from the environment, when given.
HISTORY_FROM_ENV = """
# Added by tests/test_browser_recovery.py: a site with a history of its own.
if "WS4REDIS_TEST_HISTORY" in os.environ:
    import json
    WS4REDIS_HISTORY = json.loads(os.environ["WS4REDIS_TEST_HISTORY"])
"""
#: Seconds the short history of test_expired_history_shows_the_notice keeps a publication.
SHORT_TTL = 1
SHORT_HISTORY = {"WS4REDIS_TEST_HISTORY": json.dumps({"size": 100, "ttl": SHORT_TTL})}


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory):
    from conftest import require
    from servers import redis_server_binary

    require(redis_server_binary() is not None, "redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("recovery-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("recovery")


@pytest.fixture(scope="module")
def project(own_redis, workdir):
    project = copy_example(workdir / "chatserver", own_redis.url)
    settings = project / "chatserver" / "settings.py"
    settings.write_text(settings.read_text() + HISTORY_FROM_ENV)
    return project


@pytest.fixture(scope="module")
def site(project, own_redis, workdir):
    """The example as it ships (its own WS4REDIS_HISTORY)."""
    server = example_server("pywsgi", project, own_redis.url, workdir)
    server.start()
    yield server
    server.stop()


def publish(project, redis_url: str, texts: List[str], env: Optional[Dict[str, str]] = None,
            audience: str = "facility='chat', broadcast=True") -> None:
    """Publish each text, in order, from Django code: ``RedisPublisher(<audience>)`` in ``manage.py shell``.

    ``env``: more environment, the same as the site's (the publisher writes the history, with the site's settings).
    """
    code = ("import json\n"
            "from ws4redis_mw import RedisMessage, RedisPublisher\n"
            f"publisher = RedisPublisher({audience})\n"
            f"for text in {texts!r}:\n"
            "    publisher.publish_message(RedisMessage(json.dumps({'sender': 'newsdesk', 'text': text})))\n")
    subprocess.run([PYTHON, "manage.py", "shell", "-c", code], cwd=project, check=True,
                   env={**os.environ, **example_env(project, redis_url), **(env or {})})


def knows_its_position(page) -> None:
    """Wait until the page's client has a position for the broadcast channel (from the server's envelopes)."""
    page.wait_for_function("() => { const p = ws4redis.get_positions(); return p && p.broadcast && p.broadcast.epoch; }",
                           timeout=WAIT)


def texts(page):
    return messages(page).locator(".text")


def text() -> str:
    return "news " + uuid.uuid4().hex[:8]


def test_messages_published_while_the_server_was_away_are_shown_in_order_without_a_reload(browse, site, project, own_redis):
    from playwright.sync_api import expect

    page = open_chat(browse())
    first = text()
    publish(project, own_redis.url, [first])
    expect(texts(page)).to_have_text([first], timeout=WAIT)
    knows_its_position(page)
    page.evaluate("window.loaded = true")  # gone if the page were reloaded
    site.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting", timeout=WAIT)
    missed = [text() for _ in range(5)]
    publish(project, own_redis.url, missed)
    site.start()
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=RECONNECT)
    expect(texts(page)).to_have_text([first] + missed, timeout=WAIT)
    live = text()
    publish(project, own_redis.url, [live])  # and the live ones after them, each once
    expect(texts(page)).to_have_text([first] + missed + [live], timeout=WAIT)
    assert page.evaluate("window.loaded") is True
    expect(page.locator("#notice")).to_be_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "recovered.png"))


def test_a_group_page_gets_back_what_its_group_missed(browse, site, project, own_redis):
    """Channel "group:red" of a logged-in user; the blue group's messages are not his, before or after."""
    from playwright.sync_api import expect

    page = open_chat(browse("john"), "/group/")  # john is in red only
    red, blue = "facility='groupchat', groups=['red']", "facility='groupchat', groups=['blue']"
    first = text()
    publish(project, own_redis.url, [first], audience=red)
    expect(texts(page)).to_have_text([first], timeout=WAIT)
    page.wait_for_function("() => { const p = ws4redis.get_positions()['group:red']; return p && p.epoch; }", timeout=WAIT)
    site.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting", timeout=WAIT)
    missed = [text() for _ in range(3)]
    publish(project, own_redis.url, missed[:2], audience=red)
    publish(project, own_redis.url, [text()], audience=blue)
    publish(project, own_redis.url, missed[2:], audience=red)
    site.start()
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=RECONNECT)
    expect(texts(page)).to_have_text([first] + missed, timeout=WAIT)
    expect(page.locator("#notice")).to_be_hidden()


@pytest.fixture(scope="module")
def short_history_site(project, own_redis, workdir):
    """The example with a history that keeps a publication for SHORT_TTL seconds."""
    server = example_server("pywsgi", project, own_redis.url, workdir, env=SHORT_HISTORY)
    server.start()
    yield server
    server.stop()


def test_expired_history_shows_the_notice(browse, short_history_site, project, own_redis):
    from playwright.sync_api import expect

    site = short_history_site
    page = open_chat(browse(), site.http + "/")
    first = text()
    publish(project, own_redis.url, [first], SHORT_HISTORY)
    expect(texts(page)).to_have_text([first], timeout=WAIT)
    knows_its_position(page)
    expect(page.locator("#notice")).to_be_hidden()
    site.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting", timeout=WAIT)
    publish(project, own_redis.url, [text()], SHORT_HISTORY)
    time.sleep(SHORT_TTL + 1.5)  # the channel's history has expired meanwhile
    site.start()
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=RECONNECT)
    expect(page.locator("#notice")).to_be_visible(timeout=WAIT)
    expect(page.locator("#notice")).to_contain_text("Some messages may be missing")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "not-recovered.png"))


def test_redis_losing_its_data_shows_the_notice_and_the_page_goes_on(browse, site, project, own_redis):
    """Redis restarted without persistence under an open page: the next publication has a new epoch."""
    from playwright.sync_api import expect

    page = open_chat(browse())
    first = text()
    publish(project, own_redis.url, [first])
    expect(texts(page)).to_have_text([first], timeout=WAIT)
    knows_its_position(page)
    epoch = page.evaluate("ws4redis.get_positions().broadcast.epoch")
    own_redis.stop()
    own_redis.start()  # --save "" --appendonly no: every epoch and history is gone
    after = text()
    publish(project, own_redis.url, [after])
    expect(texts(page)).to_have_text([first, after], timeout=RECONNECT)
    expect(page.locator("#notice")).to_be_visible(timeout=WAIT)
    assert page.evaluate("ws4redis.get_positions().broadcast.epoch") not in (epoch, None)
