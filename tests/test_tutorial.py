"""docs/tutorial.md, followed as written: its files and commands, taken from the page, on a real Redis and runserver.

The page is a list of steps, each a fenced block: a shell block is commands
typed in order (``cd`` changes the directory of the next ones), and every
other block is a file whose first line names it, ``# path: the whole file``,
``# path: add at the end`` or ``<!-- path -->``.  The fixture does steps 1
to 7 but ``runserver`` in a fresh directory; the tests then run the page's
``runserver`` command and check what the page promises: a notice posted to
the view (as the page's form does, with its CSRF token) or published from
``manage.py shell`` reaches the notices page's websocket, a room's visitors
hear each other and not themselves, another room hears nothing, and the
tutorial's own test (step 8) passes.

What the test changes in what it reads, and why: the virtualenv and
``pip install`` lines are skipped (the suite's virtualenv has the package,
WhiteNoise and websockets: tests/helpers.py's ``user_env``); the Redis URL
becomes this module's redis-server; ``runserver`` gets a free port.
"""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import List, Tuple

import pytest
from readme import section
from test_readme import stop_group

from conftest import require
from helpers import assert_silent, recv, user_env
from servers import ROOT, RedisServer, free_port, redis_server_binary, wait_for_port

TUTORIAL = (ROOT / "docs" / "tutorial.md").read_text()
#: Lines of the page's shell blocks the test does not run (the suite's virtualenv is the reader's).
SET_UP_LINES = ("python -m venv ", ". .venv/bin/activate", "pip install ")
FILE_HEADER = re.compile(r"^(?:# (?P<py>\S+): (?P<how>the whole file|add at the end)|<!-- (?P<html>\S+) -->)$")


def steps(text: str) -> List[Tuple[str, str]]:
    """The page's fenced blocks, in order: (language, content)."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M)


def part(number: int) -> str:
    """The text of the tutorial's step ``## number. ...``."""
    match = re.search(rf"^## {number}\. .*?$", TUTORIAL, re.M)
    assert match, f"docs/tutorial.md has no step {number}"
    return section(match.group(0)[3:], TUTORIAL)


def do(language: str, block: str, cwd: Path, redis_url: str, skip=()) -> Path:
    """Write the file a block names, or run its commands (but the lines starting with ``skip``); the directory after it."""
    block = block.replace("redis://localhost:6379/0", redis_url)
    if language in ("sh", "bash"):
        for line in block.splitlines():
            if not line or line.startswith(SET_UP_LINES + tuple(skip)):
                continue
            if line.startswith("cd "):
                cwd = cwd / line[3:]
                continue
            subprocess.run(["bash", "-c", line], cwd=cwd, env=user_env(), check=True, timeout=120,
                           capture_output=True)
        return cwd
    first, _, rest = block.partition("\n")
    header = FILE_HEADER.match(first)
    assert header, f"a block that is neither commands nor a file: {first!r}"
    path = cwd / (header["py"] or header["html"])
    if header["how"] == "add at the end":
        with open(path, "a") as file:
            file.write("\n" + block)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block)
    return cwd


@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    require(redis_server_binary() is not None, "redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("tutorial-redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory, redis):
    """Steps 1 to 7 of the tutorial but runserver, in a new directory: the project's directory."""
    cwd = tmp_path_factory.mktemp("tutorial")
    for number in range(1, 8):
        for language, block in steps(part(number)):
            if block.startswith("./manage.py shell"):
                continue  # a publication for test_a_notice_from_the_shell
            cwd = do(language, block, cwd, redis.url, skip=["./manage.py runserver"])
    return cwd


@pytest.fixture(scope="module")
def site(project):
    """The page's ``./manage.py runserver``, on a free port: its base URL."""
    (command,) = [line for line in steps(part(7))[0][1].splitlines() if line.startswith("./manage.py runserver")]
    port = free_port()
    proc = subprocess.Popen(["bash", "-c", f"exec {command} 127.0.0.1:{port}"], cwd=project, env=user_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, proc, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(proc)


class Browser:
    """Enough of a browser for the pages: cookies, and the websocket URI a page's script would open."""

    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as response:
            assert response.status == 200
            return response.read().decode()

    def post(self, path: str, fields: dict) -> int:
        data = urllib.parse.urlencode(fields).encode()
        with self.opener.open(self.base + path, data=data, timeout=10) as response:
            return response.status


def websocket_uri(page: str) -> str:
    return re.search(r'uri: "([^"]+)"', page).group(1).replace("&amp;", "&")


def test_every_block_is_a_command_or_a_file():
    blocks = steps(TUTORIAL)
    assert len(blocks) >= 10
    for language, block in blocks:
        assert language in ("sh", "bash") or FILE_HEADER.match(block.partition("\n")[0]), block[:80]


def test_a_notice_posted_to_the_view_reaches_the_page_socket(site):
    from websockets.sync.client import connect

    browser = Browser(site)
    page = browser.get("/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert "WS4Redis" in browser.get("/static/ws4redis_mw/ws4redis.js")
    with connect(websocket_uri(page), open_timeout=10, close_timeout=2) as ws:
        assert browser.post("/notify/", {"text": "Tea is ready", "csrfmiddlewaretoken": token}) == 200
        assert recv(ws) == "Tea is ready"


def test_a_notice_from_the_shell_reaches_the_page_socket(site, project):
    from websockets.sync.client import connect

    (publish,) = [block for _, block in steps(part(7)) if block.startswith("./manage.py shell")]
    with connect(websocket_uri(Browser(site).get("/")), open_timeout=10, close_timeout=2) as ws:
        subprocess.run(["bash", "-c", publish], cwd=project, env=user_env(), check=True, timeout=60)
        assert recv(ws) == "Tea is ready"


def test_room_visitors_hear_each_other_not_themselves_nor_another_room(site):
    from websockets.sync.client import connect

    lobby = websocket_uri(Browser(site).get("/room/lobby/"))
    kitchen = websocket_uri(Browser(site).get("/room/kitchen/"))
    assert lobby != kitchen
    with connect(lobby, close_timeout=2) as alice, connect(lobby, close_timeout=2) as bob, \
            connect(kitchen, close_timeout=2) as cook:
        alice.send("Hi Bob")
        assert recv(bob) == "Hi Bob"
        assert_silent(alice)
        assert_silent(cook)


def test_the_tutorials_own_test_passes(project, redis):
    language, block = steps(part(8))[0]
    do(language, block, project, redis.url)
    (command,) = [block for language, block in steps(part(8)) if language in ("sh", "bash")]
    result = subprocess.run(["bash", "-c", command], cwd=project, env=user_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 1 test" in result.stderr, result.stderr
