"""The fast tests on every supported Python and Django: ``nox`` (``nox -l`` lists the sessions).

One session per combination, ``fast(python='3.12', django='6.0')`` and so
on: a fresh virtualenv with the package and its test extra on that Python,
Django pinned to that series, then pytest on the tests that start no server
process (a redis-server is fine).  The full suite, with every server mode,
Autobahn and the browser, runs on one combination (``make test``: the set-up's
Python with Django 5.2); ``.ci/run`` runs both.

Supported (see the README): Django 5.2 LTS on Python 3.11-3.13, Django 6.0
and 6.1 on Python 3.12-3.13 (Django 6 needs 3.12).  Python 3.14 is supported
by those Django series but not installed here; Python 3.10 and Django 4.2
are past their end of support and no longer tested.

The interpreters are found on PATH (``python3.11`` ...) or in pyenv's
versions.
"""

from __future__ import annotations

import glob
import os
import subprocess

import nox

PYTHONS = ["3.11", "3.12", "3.13"]
#: (Python, Django) combinations tested; Django 6 needs Python 3.12.
COMBINATIONS = [(python, django) for python in PYTHONS for django in ["5.2", "6.0", "6.1"]
                if django == "5.2" or python >= "3.12"]

#: The test modules that start server processes (each server mode, runserver,
#: make demo, the browser, Autobahn): left to the full suite.  A new test
#: module runs here too unless it is listed.
SERVER_TESTS = ["test_protocol", "test_runserver", "test_shutdown", "test_browser", "test_autobahn", "test_hub",
                "test_readme", "test_demo", "test_example_chat", "test_limits", "test_middleware", "test_bench",
                "test_recovery", "test_cluster", "test_cluster_failover", "test_cluster_reshard", "test_browser_recovery",
                "test_serve", "test_history_isolation", "test_testing", "test_control", "test_subprotocols", "test_migrating",
                "test_tutorial"]

nox.options.sessions = ["fast"]
nox.options.error_on_missing_interpreters = True


def _add_pyenv_to_path() -> None:
    """Put pyenv's interpreters on PATH (its shims answer only for the selected versions)."""
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        root = os.path.expanduser("~/.pyenv")
    found = []
    for version in PYTHONS:
        found += sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin")))[-1:]
    os.environ["PATH"] = os.pathsep.join(found + [os.environ.get("PATH", "")])


_add_pyenv_to_path()


@nox.session
@nox.parametrize("python,django", COMBINATIONS)
def fast(session: nox.Session, django: str) -> None:
    session.install("-q", ".[test]", f"django~={django}.0")
    session.run("python", "-c", "import sys, django; print('Python', sys.version.split()[0], 'Django', django.__version__)")
    ignore = [f"--ignore=tests/{name}.py" for name in SERVER_TESTS]
    # Any other test that starts a server process (tests/servers.py) skips itself.
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *ignore, *session.posargs,
                env={"WS4REDIS_FAST_TESTS": "1"})
