"""ws4redis_mw.testing, as a new user meets it: docs/testing.md's tests, run on a new project by both test runners.

A fresh ``django-admin startproject mysite`` gets the README's Quick start
(tests/helpers.py ``quick_start_project``), then the test files docs/testing.md
shows, taken from the page itself, so this fails when the page drifts from
what works: ``mysite/tests.py`` under ``manage.py test``, and the pytest
files (``conftest.py``, ``mysite/test_foobar.py``, ``pytest.ini``) under
pytest with pytest-django.  Both run against this module's own redis-server.
"""

from __future__ import annotations

import subprocess

import pytest
from readme import block_starting_with

from conftest import require
from helpers import quick_start_project, user_env
from servers import ROOT, RedisServer, redis_server_binary

PAGE = (ROOT / "docs" / "testing.md").read_text()
FILES = ["# mysite/tests.py", "# conftest.py", "# mysite/test_foobar.py", "# pytest.ini"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    require(redis_server_binary() is not None, "redis-server is not installed (apt-get install redis-server)")
    redis = RedisServer(tmp_path_factory.mktemp("testing-redis"))
    redis.start()
    try:
        root = quick_start_project(tmp_path_factory.mktemp("testing"), redis.url)
        for first_line in FILES:
            (root / first_line[2:]).write_text(block_starting_with(PAGE, first_line))
        yield root
    finally:
        redis.stop()


def run(project, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=project, env=user_env(), capture_output=True, text=True, timeout=180)


def test_the_pages_test_case_passes_under_manage_py_test(project):
    result = run(project, "./manage.py", "test", "-v", "2")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Ran 2 tests" in output and "OK" in output, output
    assert "Traceback" not in output, output


def test_the_pages_pytest_tests_pass_under_pytest(project):
    result = run(project, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "mysite/test_foobar.py")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "2 passed" in output, output
