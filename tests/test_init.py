"""The package's public names (``ws4redis_mw/__init__.py``): each one resolves, and importing the package stays cheap."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import ws4redis_mw

from servers import ROOT


@pytest.mark.parametrize("name", ws4redis_mw.__all__)
def test_every_public_name_resolves(name, django_setup):
    assert getattr(ws4redis_mw, name) is not None


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'RedisPublsher'"):
        ws4redis_mw.RedisPublsher  # noqa: B018


def test_importing_the_package_imports_neither_django_nor_gevent():
    """``INSTALLED_APPS = ["ws4redis_mw"]`` must not need Django set up, nor patch anything."""
    code = "import sys, ws4redis_mw; print(sorted(m for m in ('django', 'gevent', 'redis') if m in sys.modules))"
    # Without coverage's start-up hook: measuring gevent programs imports gevent.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_PROCESS")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
