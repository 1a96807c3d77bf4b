"""The chat example (``examples/chatserver``) as the tests serve it.

Each test module gets a copy in its working directory, migrated and with the
demo users, so that the example's SQLite database and a test touching its
files never reach the repository.  :func:`example_server` starts it under one
of :data:`MODES` with :class:`servers.Server`, like the test project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from servers import PYTHON, ROOT, Server, ServerMode

EXAMPLE = ROOT / "examples" / "chatserver"

#: How to serve a copy of the example: (project directory, port) -> command.
MODES: Dict[str, Callable[[Path, int], List[str]]] = {
    # As a developer types it: manage.py, autoreloader on.
    "runserver-autoreload": lambda project, port: [PYTHON, str(project / "manage.py"), "runserver", f"127.0.0.1:{port}"],
    "runserver": lambda project, port: [PYTHON, str(project / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"],
    "pywsgi": lambda project, port: [PYTHON, "-m", "ws4redis_mw.serve", "chatserver.wsgi:application",
                                     "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
}


def example_env(project: Path, redis_url: str) -> Dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "chatserver.settings",
        "PYTHONPATH": f"{project}{os.pathsep}{ROOT}",
        "WS4REDIS_CONNECTION": redis_url,
    }


def copy_example(dest: Path, redis_url: str) -> Path:
    """A migrated copy of the example in ``dest``, with the demo users."""
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("db.sqlite3", "__pycache__"))
    env = {**os.environ, **example_env(dest, redis_url)}
    for command in (["migrate", "-v0"], ["create_demo_users"]):
        subprocess.run([PYTHON, "manage.py", *command], cwd=dest, env=env, check=True, stdout=subprocess.DEVNULL)
    return dest


def example_server(mode: str, project: Path, redis_url: str, workdir: Path,
                   options: Sequence[str] = (), env: Optional[Dict[str, str]] = None) -> Server:
    """A :class:`Server` (not started) serving ``project`` in ``mode``, with more command-line ``options``."""
    server_mode = ServerMode(f"example-{mode}", lambda port, _: MODES[mode](project, port) + list(options))
    return Server(server_mode, redis_url, workdir, {**example_env(project, redis_url), **(env or {})})
