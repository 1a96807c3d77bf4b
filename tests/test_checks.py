"""System check ws4redis_mw.W002: the client script must be collected when DEBUG is False.

The rule is tested directly, and once through ``manage.py check`` and
``collectstatic`` on a small settings module, as a user runs them.
"""

from __future__ import annotations

import os
import subprocess
import sys

from ws4redis_mw.apps import client_script_problem

from servers import ROOT


def problem(**overrides):
    arguments = dict(debug=False, static_url="/static/", static_root=None, local_storage=True, whitenoise_finders=False)
    arguments.update(overrides)
    return client_script_problem(**arguments)


def test_no_warning_while_debug_is_on():
    assert problem(debug=True) is None


def test_warns_when_static_root_is_not_set():
    assert "STATIC_ROOT is not set" in problem()


def test_warns_when_the_script_was_not_collected(tmp_path):
    assert "is not in STATIC_ROOT" in problem(static_root=str(tmp_path))


def test_no_warning_once_collected(tmp_path):
    (tmp_path / "ws4redis_mw").mkdir()
    (tmp_path / "ws4redis_mw" / "ws4redis.js").write_text("")
    assert problem(static_root=str(tmp_path)) is None


def test_no_warning_where_it_cannot_tell():
    assert problem(static_url="https://cdn.example.com/static/") is None
    assert problem(local_storage=False) is None  # S3 and the like
    assert problem(whitenoise_finders=True) is None  # WhiteNoise serves from the apps
    assert problem(static_url=None) is None  # a site without static files


SETTINGS = """
SECRET_KEY = "x"
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
INSTALLED_APPS = ["ws4redis_mw", "django.contrib.staticfiles"]
STATIC_URL = "/static/"
STATIC_ROOT = {root!r}
"""


def manage(tmp_path, *args):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "checksettings", "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    return subprocess.run([sys.executable, "-m", "django", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_manage_py_check_warns_until_collectstatic(tmp_path):
    (tmp_path / "checksettings.py").write_text(SETTINGS.format(root=str(tmp_path / "static")))
    before = manage(tmp_path, "check")
    assert "ws4redis_mw.W002" in before.stderr + before.stdout
    collect = manage(tmp_path, "collectstatic", "--noinput", "-v0")
    assert collect.returncode == 0, collect.stderr
    assert "W002" not in collect.stderr  # collectstatic does not run this check
    after = manage(tmp_path, "check")
    assert after.returncode == 0 and "W002" not in after.stderr + after.stdout, after.stderr


def test_manage_py_check_passes_on_a_site_without_static_files(tmp_path):
    (tmp_path / "checksettings.py").write_text('SECRET_KEY = "x"\nDEBUG = False\nINSTALLED_APPS = ["ws4redis_mw"]\n')
    result = manage(tmp_path, "check")
    assert result.returncode == 0 and "W002" not in result.stderr, result.stderr
