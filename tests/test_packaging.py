"""The package as users install it: a wheel built from pyproject.toml, installed into a fresh virtualenv.

The wheel is built the way the README shows (``python -m build``), but
without build isolation, so that no index is needed: the test extra brings
``build`` and ``setuptools``.  It is installed with ``--no-index`` into a new
virtualenv, and the installed copy (not this checkout) must carry the static
files and ``py.typed``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from servers import ROOT

#: What a built wheel must contain besides the modules.
PACKAGE_DATA = ["ws4redis_mw/py.typed", "ws4redis_mw/static/ws4redis_mw/ws4redis.js", "ws4redis_mw/static/ws4redis_mw/ws4redis.mjs",
                "ws4redis_mw/static/ws4redis_mw/ws4redis.d.ts", "ws4redis_mw/static/ws4redis_mw/ws4redis.d.mts"]


def quiet_env() -> dict:
    # PYTHONDONTWRITEBYTECODE makes distutils print "byte-compiling is disabled" warnings.
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(wheel path, build output): ``python -m build`` on a copy of the sources (build leaves files behind)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "PACKAGE.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "ws4redis_mw", src / "ws4redis_mw", ignore=shutil.ignore_patterns("__pycache__"))
    dist = src / "dist"
    result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
                            env=quiet_env(), capture_output=True, text=True, timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    (wheel,) = dist.glob("*.whl")
    return wheel, output


def test_build_prints_no_warning(built):
    _, output = built
    warnings = [line for line in output.splitlines() if "warn" in line.lower()]
    assert not warnings, output


def test_wheel_carries_static_files_and_py_typed(built):
    wheel, _ = built
    names = zipfile.ZipFile(wheel).namelist()
    assert [name for name in PACKAGE_DATA if name not in names] == []


def test_wheel_declares_the_extras(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    assert {"gunicorn", "uwsgi", "test"} <= set(metadata.get_all("Provides-Extra"))
    requires = metadata.get_all("Requires-Dist")
    # gunicorn's gevent workers import packaging, which gunicorn does not require.
    assert any(r.startswith("packaging") and 'extra == "gunicorn"' in r for r in requires), requires
    assert any(r.startswith("gunicorn") and 'extra == "gunicorn"' in r for r in requires), requires
    assert any(r.lower().startswith("uwsgi") and 'extra == "uwsgi"' in r for r in requires), requires


def test_wheel_names_its_license_and_authors(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in archive.namelist())
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Author"] == "the ws4redis_mw authors"


def test_the_package_index_page_has_no_link_that_would_be_dead_there(built):
    import re

    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        metadata_name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    description = metadata.get_payload()
    assert "WebSocketMiddleware" in description
    links = re.findall(r"\]\(([^)]*)\)", description)
    assert links and all(link.startswith("https://") for link in links), links


def test_wheel_installs_into_a_fresh_virtualenv_without_an_index(built, tmp_path):
    wheel, _ = built
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)],
                   env=quiet_env(), check=True, timeout=120)
    # Run from tmp_path, so that this checkout's ws4redis_mw cannot be the one imported.
    check = """
import sys, importlib.resources, ws4redis_mw
files = importlib.resources.files("ws4redis_mw")
assert str(files).startswith(sys.prefix), (str(files), sys.prefix)
for name in ("py.typed", "static/ws4redis_mw/ws4redis.js", "static/ws4redis_mw/ws4redis.mjs"):
    assert files.joinpath(name).is_file(), name
print(ws4redis_mw.__version__)
"""
    result = subprocess.run([str(python), "-c", check], cwd=tmp_path, env=quiet_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == Path(wheel).name.split("-")[1]
