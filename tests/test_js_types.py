"""The JavaScript client's TypeScript declarations (ws4redis.d.ts, ws4redis.d.mts) type what the client does.

``tsc --strict --noEmit`` checks tests/typescript/: a classic page using the
global ``WS4Redis`` and an ES module importing ws4redis.mjs, with every
option, callback and method, and with misuses marked ``@ts-expect-error``
(a declaration too loose to reject one fails the check).  TypeScript comes
from the npm registry, installed into .cache/typescript by
.ci/install-typescript; without npm the test skips, except under CI=true.
The declared options are the documented ones, and the script's.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from readme import first_code_span, section, table

from conftest import require
from servers import ROOT

STATIC = ROOT / "ws4redis_mw" / "static" / "ws4redis_mw"


def tsc() -> str:
    require(shutil.which("npm") is not None, "npm is not installed (apt-get install npm): TypeScript comes from npm")
    result = subprocess.run(["bash", str(ROOT / ".ci" / "install-typescript")], capture_output=True, text=True, timeout=300)
    require(result.returncode == 0, f"TypeScript could not be installed: {result.stderr[-2000:]}")
    return result.stdout.strip()


def test_declarations_pass_tsc_strict_on_the_usage_examples():
    result = subprocess.run([tsc(), "--strict", "--noEmit", "-p", str(ROOT / "tests" / "typescript")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def declared_options() -> set:
    block = re.search(r"interface Options \{(.*?)\n    \}", (STATIC / "ws4redis.d.ts").read_text(), re.S).group(1)
    return set(re.findall(r"^\s+(\w+)\??:", block, re.M))


def test_declared_options_are_the_documented_and_the_scripts():
    documented = {first_code_span(row["option"]).split("(")[0]
                  for row in table(section("Options", (ROOT / "docs" / "js-client.md").read_text()))}
    script = (STATIC / "ws4redis.js").read_text()
    defaults = set(re.findall(r"(\w+): ", re.search(r"var DEFAULTS = \{(.*?)\};", script, re.S).group(1)))
    assert declared_options() == documented
    assert defaults <= declared_options()


def test_declared_methods_are_the_clients():
    script = (STATIC / "ws4redis.js").read_text()
    methods = set(re.findall(r"this\.(\w+) = function", script))
    block = re.search(r"interface Client \{(.*?)\n    \}", (STATIC / "ws4redis.d.ts").read_text(), re.S).group(1)
    assert set(re.findall(r"^\s+(\w+)\(", block, re.M)) == methods
