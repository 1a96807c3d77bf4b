"""The chat example on a phone, through a Redis hiccup, and its recipient picker, in headless Chromium.

Like tests/test_browser.py (whose browser fixture this module shares), but on
a redis-server of its own, which the hiccup test stops and starts again.
Screenshots go to ``tests/_artifacts/``.
"""

from __future__ import annotations

import pytest
from test_browser import ARTIFACTS, WAIT, browse, browser, messages, open_chat, send  # noqa: F401 (browse, browser: fixtures)

from example import copy_example, example_server
from servers import RedisServer

PHONE = {"width": 360, "height": 740}


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory):
    from conftest import require
    from servers import redis_server_binary

    require(redis_server_binary() is not None, "redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("chat-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def site(own_redis, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("chat")
    project = copy_example(workdir / "chatserver", own_redis.url)
    server = example_server("pywsgi", project, own_redis.url, workdir)
    server.start()
    yield server
    server.stop()


def outside_viewport(page, selector: str, width: int):
    """The texts of the elements matching ``selector`` that are not wholly inside 0..width."""
    return page.eval_on_selector_all(selector, """(elements, width) => elements
        .filter(e => { const r = e.getBoundingClientRect(); return r.left < 0 || r.right > width || r.width === 0; })
        .map(e => e.textContent.trim())""", width)


@pytest.mark.parametrize("path, user", [("/", None), ("/", "mary"), ("/user/", "mary"), ("/group/", "mary")])
def test_every_header_link_is_on_screen_on_a_phone(browse, path, user):
    page = browse(user, viewport=PHONE).new_page()
    page.goto(path)
    links = page.locator("header a, header button")
    assert links.count() >= 4
    assert outside_viewport(page, "header a, header button", PHONE["width"]) == []
    # Nothing wider than the screen: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"phone-{path.strip('/') or 'everyone'}-{user or 'anonymous'}.png"), full_page=True)


def test_at_320_px_too(browse):
    page = browse("mary", viewport={"width": 320, "height": 640}).new_page()
    page.goto("/user/")
    visible = "header a, header button, form.send input:not([type=hidden]), form.send select, form.send button"
    assert outside_viewport(page, visible, 320) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 320


def test_direct_preselects_the_last_correspondent(browse):
    from playwright.sync_api import expect

    john = open_chat(browse("john"), "/user/")
    mary = open_chat(browse("mary"), "/user/")
    expect(john.locator("select[name=to]")).to_have_value("joe")  # alphabetical first, before any message
    send(mary, "hi john", to="john")
    expect(messages(john).last).to_contain_text("hi john", timeout=WAIT)
    expect(john.locator("select[name=to]")).to_have_value("mary")
    john.reload()
    expect(john.locator("select[name=to]")).to_have_value("mary")  # remembered


def test_a_send_while_redis_is_away_says_retrying_and_goes_out_when_it_is_back(browse, own_redis):
    from playwright.sync_api import expect

    john = open_chat(browse("john"), "/user/")
    own_redis.stop()
    try:
        send(john, "are you there?", to="mary")
        expect(john.locator("#error")).to_be_visible(timeout=WAIT)
        expect(john.locator("#error")).to_have_text("not sent, retrying…", timeout=WAIT)
        expect(john.locator("input[name=text]")).to_have_value("are you there?")  # kept until it has gone
        john.screenshot(path=str(ARTIFACTS / "chat-retrying.png"))
    finally:
        own_redis.start()
    expect(messages(john).last).to_contain_text("are you there?", timeout=30_000)
    expect(john.locator("#error")).to_be_hidden()
    expect(john.locator("input[name=text]")).to_have_value("")


def test_the_examples_own_tests_pass_with_ws4redis_mw_testing(tmp_path, redis_server):
    """examples/chatserver/chat/tests.py: the site's own suite, as its developers run it."""
    import os
    import subprocess

    from example import copy_example, example_env
    from servers import PYTHON

    project = copy_example(tmp_path / "chatserver", redis_server.url)
    done = subprocess.run([PYTHON, "manage.py", "test", "chat", "-v2"], cwd=project, capture_output=True, text=True,
                          env={**os.environ, **example_env(project, redis_server.url)}, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ran 5 tests" in done.stderr, done.stderr
