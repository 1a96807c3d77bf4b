"""The chat example in a real browser: headless Chromium, driven by Playwright.

Debian's ``/usr/bin/chromium`` (Playwright's own browser download is never
used), the example served by a real server process (``manage.py runserver``
and ``python -m ws4redis_mw.serve``) and a real redis-server.  Screenshots go
to ``tests/_artifacts/``.  ``.ci/install-browser`` installs what is needed.
"""

from __future__ import annotations

import os
import shutil
import uuid

import pytest

from conftest import require
from example import copy_example, example_server
from servers import ROOT

CHROMIUM = os.environ.get("WS4REDIS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ARTIFACTS = ROOT / "tests" / "_artifacts"
#: Milliseconds a page gets to connect (or to show a message).
WAIT = 10_000


@pytest.fixture(scope="module")
def browser():
    require(os.access(CHROMIUM, os.X_OK), f"chromium is not installed at {CHROMIUM} (.ci/install-browser)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed (.ci/install-browser VENV)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def project(redis_server, workdir):
    return copy_example(workdir / "chatserver-browser", redis_server.url)


@pytest.fixture(scope="module", params=["runserver", "pywsgi"])
def site(request, project, redis_server, workdir):
    server = example_server(request.param, project, redis_server.url, workdir)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def browse(browser, site):
    """browse(user=None, viewport=None) -> a new browser context, logged in as ``user``; JavaScript errors fail the test.

    It uses the requesting module's ``site`` fixture (tests/test_example_chat.py has its own).
    """
    contexts, errors = [], []

    def _browse(user=None, viewport=None):
        context = browser.new_context(base_url=site.http, viewport=viewport or {"width": 1000, "height": 720})
        context.on("weberror", lambda error: errors.append(error.error))
        contexts.append(context)
        if user is not None:
            page = context.new_page()
            page.goto("/login/?next=/user/")
            page.fill("input[name=username]", user)
            page.fill("input[name=password]", "demo")
            page.click("button[type=submit]")
            page.wait_for_url("**/user/")
            page.close()
        return context

    yield _browse
    for context in contexts:
        context.close()
    assert not errors, errors


def open_chat(context, path: str = "/"):
    from playwright.sync_api import expect

    page = context.new_page()
    page.goto(path)
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT)
    return page


def send(page, text: str, to: str = None) -> None:
    if to is not None:
        page.select_option("select[name=to]", to)
    page.fill("input[name=text]", text)
    page.press("input[name=text]", "Enter")


def messages(page):
    return page.locator("#messages li")


def screenshot(page, name: str, site) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{site.mode.name}.png"))


def text() -> str:
    return "hello " + uuid.uuid4().hex[:8]


def test_broadcast_message_reaches_the_other_page(browse, site):
    from playwright.sync_api import expect

    first, second = open_chat(browse()), open_chat(browse())
    message = text()
    send(first, message)
    expect(messages(second).last).to_contain_text(message, timeout=WAIT)
    expect(messages(first).last).to_contain_text(message, timeout=WAIT)  # echo: the sender's own list
    screenshot(second, "broadcast", site)


def test_user_message_reaches_only_that_users_pages(browse, site):
    from playwright.sync_api import expect

    john, mary, joe = browse("john"), browse("mary"), browse("joe")
    mary_pages = [open_chat(mary, "/user/"), open_chat(mary, "/user/")]
    john_page, joe_page = open_chat(john, "/user/"), open_chat(joe, "/user/")
    message = text()
    send(john_page, message, to="mary")
    for page in mary_pages + [john_page]:  # the sender sees his own message too
        expect(messages(page).last).to_contain_text("john → mary", timeout=WAIT)
        expect(messages(page).last).to_contain_text(message)
    joe_page.wait_for_timeout(500)
    expect(messages(joe_page)).to_have_count(0)
    send(mary_pages[0], "hi john, got it", to="john")
    expect(messages(john_page).last).to_contain_text("hi john, got it", timeout=WAIT)
    expect(messages(mary_pages[1]).last).to_contain_text("hi john, got it", timeout=WAIT)
    screenshot(mary_pages[1], "user-chat", site)


def test_group_message_reaches_only_the_group(browse, site):
    from playwright.sync_api import expect

    john, mary, joe = browse("john"), browse("mary"), browse("joe")
    john_page, mary_page, joe_page = (open_chat(context, "/group/") for context in (john, mary, joe))
    message = text()
    send(john_page, message, to="red")  # john and mary, not joe
    expect(messages(mary_page).last).to_contain_text(message, timeout=WAIT)
    expect(messages(john_page).last).to_contain_text(message, timeout=WAIT)
    joe_page.wait_for_timeout(500)
    expect(messages(joe_page)).to_have_count(0)
    send(mary_page, "blue team, anyone?", to="blue")  # mary and joe
    expect(messages(joe_page).last).to_contain_text("mary → blue", timeout=WAIT)
    screenshot(mary_page, "group-chat", site)


def test_page_reconnects_after_a_server_restart(browse, site):
    from playwright.sync_api import expect

    page = open_chat(browse())
    site.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting", timeout=WAIT)
    site.start()
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=30_000)
    message = text()
    send(open_chat(browse()), message)
    expect(messages(page).last).to_contain_text(message, timeout=WAIT)
    screenshot(page, "reconnected", site)


def test_message_sent_while_disconnected_is_queued_and_sent_after_reconnect(browse, site):
    """The JavaScript client's send queue: typed while the server is down, delivered once it is back."""
    from playwright.sync_api import expect

    page = open_chat(browse())
    site.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting", timeout=WAIT)
    message = text()
    send(page, message)  # the broadcast page publishes through its own websocket: queued now
    page.wait_for_timeout(300)
    expect(messages(page)).to_have_count(0)  # nothing shown before it has made the trip
    site.start()
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=30_000)
    expect(messages(page).last).to_contain_text(message, timeout=WAIT)  # back through Redis (echo)


def test_dead_connection_is_detected_by_missed_heartbeats(browse, site):
    """A server that stops answering without closing anything (SIGSTOP): the page
    notices through its unanswered heartbeats, and reconnects once it is back."""
    import signal

    from playwright.sync_api import expect

    page = open_chat(browse())
    pids = site.pids()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        # heartbeat_interval 5 s, 3 missed: about 15-20 s with no close frame and no FIN.
        expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting", timeout=30_000)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=40_000)


def test_page_from_another_port_cannot_open_a_socket_with_the_users_cookie(browse, site, redis_server):
    """Cookies are not per port: a page on 127.0.0.1:<other> sends john's session cookie along. Its Origin gives it away."""
    import http.server
    import threading

    from servers import free_port

    page = (f'<script>window.result = {{opened: false, messages: [], closed: null}};'
            f'const ws = new WebSocket("ws://127.0.0.1:{site.port}/ws/chat?subscribe-user");'
            'ws.onopen = () => result.opened = true; ws.onmessage = e => result.messages.push(e.data);'
            'ws.onclose = e => result.closed = e.code;</script>').encode()

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        tab = browse("john").new_page()
        tab.goto(f"http://127.0.0.1:{attacker.server_address[1]}/")
        tab.wait_for_function("window.result && window.result.closed !== null", timeout=WAIT)
        redis_server.client().publish("user:john:chat", "secret for john")
        result = tab.evaluate("window.result")
        assert result["opened"] is False and result["messages"] == [], result
    finally:
        attacker.shutdown()
