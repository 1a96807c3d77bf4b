"""The layers hold: the I/O-free modules import no I/O package, directly or through another module of ours.

The I/O-free core (docs/design.md, "What is I/O-free"; the README's "How the
pieces fit") takes bytes and events and returns actions, so it must load and
run without gevent, Redis, Django or werkzeug.  Two views of "imports":

* what ``import`` really loads: a fresh interpreter imports the module and none
  of those packages may be in ``sys.modules`` afterwards (module-level imports,
  followed through every module they pull in);
* what the code can reach: the source's ``import`` statements at every level,
  inside functions too (a function-level import runs when the function is
  called, and is the usual way a layer violation hides), followed through the
  package's own modules.  ``if TYPE_CHECKING:`` blocks are left out: they are
  for the type checker and never run.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

from servers import ROOT

PACKAGE = Path(ROOT) / "ws4redis_mw"

#: The packages that do I/O (or need a set-up Django) and the I/O-free core must not touch.
IO_PACKAGES = ("gevent", "geventwebsocket", "redis", "django", "werkzeug", "uwsgi", "socket", "select", "selectors")

#: The I/O-free modules, each with why it is one.
IO_FREE: Dict[str, str] = {
    "frames": "the RFC 6455 codec: bytes in, frames and close codes out",
    "bridge": "one connection's whole logic: events in, send/publish/close actions out",
    "registry": "who listens to which channel and what to (un)subscribe, as plain sets",
    "history": "history keys, envelopes and recovery rules; the Redis calls live in the hub",
    "gaps": "the bound of what a subscription gap swallowed, computed from readings handed in",
    "channels": "channel names from facility and audience (the ws4redis key layout)",
    "limits": "per-address and per-user socket counts, plain dictionaries",
    "origins": "the Origin check: a header and the allowed list in, a verdict out",
    "clientaddr": "whose address a request is, from environ values and the trusted proxies",
    "counters": "the process's counters: plain integers the I/O modules add to",
    "errors": "the exception type raised when Redis cannot be reached",
}

#: Known violations through function-level imports, to be fixed where they are
#: (settings.py reads Django's settings and imports handshake.py, which uses
#: werkzeug, inside functions).  Strict: once fixed, the test passes and the
#: marker must go.
REACHES_IO_TODAY: Dict[str, str] = {
    "bridge": "imports settings.py (Settings), whose functions import django.conf and handshake.py (werkzeug)",
    "history": "a function imports settings.import_string_or_callable; settings.py's functions import django.conf and werkzeug",
}


def _module_path(name: str) -> Path:
    path = PACKAGE / (name.replace(".", "/") + ".py")
    return path if path.exists() else PACKAGE / name.replace(".", "/") / "__init__.py"


def _imports(name: str) -> Iterator[Tuple[str, int]]:
    """Every module ``name``'s source imports, at any depth but ``if TYPE_CHECKING:``, as absolute names."""
    package = ["ws4redis_mw"] + name.split(".")[:-1]

    def walk(node: ast.AST) -> Iterator[Tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:
                    yield from walk_one(other)
            else:
                yield from walk_one(child)

    def walk_one(node: ast.AST) -> Iterator[Tuple[str, int]]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.module or "", node.lineno
            else:
                base = package[: len(package) - node.level + 1]
                if node.module:
                    yield ".".join(base + [node.module]), node.lineno
                else:  # from . import a, b: each is a module
                    for alias in node.names:
                        yield ".".join(base + [alias.name]), node.lineno
        yield from walk(node)

    yield from walk(ast.parse(_module_path(name).read_text(), str(_module_path(name))))


def reached_io_imports(name: str) -> List[str]:
    """The chains by which module ``name`` reaches an I/O package, e.g. ``bridge:84 -> settings:238 django.conf``."""
    found: List[str] = []
    seen: Set[str] = set()

    def visit(module: str, chain: str) -> None:
        if module in seen:
            return
        seen.add(module)
        for imported, line in _imports(module):
            top, _, rest = imported.partition(".")
            where = f"{chain}{module}:{line}"
            if top in IO_PACKAGES:
                found.append(f"{where} {imported}")
            elif top == "ws4redis_mw" and rest and _module_path(rest).exists():
                visit(rest, where + " -> ")

    visit(name, "")
    return found


@pytest.mark.parametrize("name", sorted(IO_FREE))
def test_importing_an_io_free_module_loads_no_io_package(name):
    code = (
        f"import sys, ws4redis_mw.{name}\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {IO_PACKAGES!r}))"
    )
    # Without coverage's start-up hook: measuring gevent programs imports gevent.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_PROCESS")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"ws4redis_mw.{name} ({IO_FREE[name]}) loads {out.strip()}"


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail(reason=REACHES_IO_TODAY[name], strict=True))
        if name in REACHES_IO_TODAY
        else name
        for name in sorted(IO_FREE)
    ],
)
def test_an_io_free_module_reaches_no_io_package_even_from_a_function(name):
    assert reached_io_imports(name) == [], f"ws4redis_mw.{name} ({IO_FREE[name]})"


def test_the_import_walk_sees_function_level_and_relative_imports():
    """The walker itself: settings.py imports django.conf inside a function, and handshake.py werkzeug through it."""
    chains = reached_io_imports("settings")
    assert any(chain.endswith("django.conf") for chain in chains), chains
    assert any("handshake:" in chain and "werkzeug" in chain for chain in chains), chains
