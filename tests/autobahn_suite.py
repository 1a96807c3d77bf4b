"""Run the Autobahn WebSocket conformance suite (fuzzing client) against a server.

The suite (PyPI ``autobahntestsuite``, command ``wstest``) is Python 2.7 code.
``.ci/install-autobahn`` installs it under a Python 2.7 interpreter into a
private prefix (default ``<repo>/.cache/autobahn``, or
``$WS4REDIS_AUTOBAHN_PREFIX``); this module drives it from Python 3.  It is a
plain module (no pytest import) so it can be used from tests and by hand.

Typical use from a pytest test::

    import pytest
    from autobahn_suite import autobahn_available, run_fuzzingclient, describe_failures

    ok, why = autobahn_available()
    if not ok:
        pytest.skip(why)          # or pytest.fail(why) on CI
    res = run_fuzzingclient("ws://127.0.0.1:%d/ws/echo" % port,
                            agent="ws4redis-gevent",  # keeps reports apart
                            outdir=tmp_path / "autobahn")
    assert res["summary"]["FAILED"] == 0, describe_failures(res)

By hand (server already listening)::

    .ci/install-autobahn
    python tests/autobahn_suite.py ws://127.0.0.1:9001/ --agent echo --outdir /tmp/ab

What happens: a fuzzingclient spec is written to ``<outdir>/spec.json``, then
``wstest -m fuzzingclient -s spec.json`` runs under the Python 2.7 interpreter
(started via ``python2.7 -c`` with ``site.addsitedir(<prefix site-packages>)``,
because ``zope`` is a namespace package installed through a ``*-nspkg.pth``
file, and ``.pth`` files are only honoured in *site* dirs, not on PYTHONPATH).
Its output goes to ``<outdir>/wstest.log``; the reports (``index.json``,
``index.html``, and per case ``<agent>_case_<id>.json/.html``) go to
``<outdir>``.  ``index.json`` is then parsed into a summary.

Agents: the report files are named after the agent string (lower-cased, all but
``a-z0-9`` turned to ``_``), and ``index.json``/``index.html`` hold only the
last run's agents, so give each server mode its own agent *and* outdir.

Environment:
    WS4REDIS_AUTOBAHN_PREFIX  install prefix (same as .ci/install-autobahn)
    WS4REDIS_AUTOBAHN_PYTHON  Python 2.7 interpreter to use
"""

from __future__ import annotations

import ast
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence, TypedDict

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTALL_SCRIPT = REPO_ROOT / ".ci" / "install-autobahn"
STAMP_NAME = ".ws4redis-autobahn-stamp"

# 9.* (performance, minutes long) and 12.*/13.* (permessage-deflate) excluded.
DEFAULT_CASES: list[str] = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "8.*", "10.*"]

# Behaviours the suite reports.  "behavior" is about the data exchanged,
# "behaviorClose" about the closing handshake.
BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "FAILED", "UNIMPLEMENTED")
# What counts as a failure: red cells in the suite's own HTML report
# (WRONG CODE is shown yellow = non-strict, FAILED BY CLIENT as "almost").
FAIL_BEHAVIORS = frozenset({"FAILED"})
FAIL_CLOSE_BEHAVIORS = frozenset({"FAILED", "UNCLEAN"})

# wstest itself can't notice a stuck server; without our own timeout a hung
# case would hang the test run.  1-8+10 take well under a minute on loopback.
DEFAULT_TIMEOUT = 600.0

# Runs wstest's console-script entry point after adding the prefix as a site
# dir.  argv: [-c, SITE_DIR, wstest args...]
_BOOTSTRAP = (
    "import site, sys; site.addsitedir(sys.argv.pop(1)); sys.argv[0] = 'wstest'; "
    "from autobahntestsuite.wstest import run; run()"
)
_IMPORT_CHECK = (
    "import site, sys; site.addsitedir(sys.argv[1]); "
    "import zope.interface, twisted, autobahn, autobahntestsuite; "
    "from autobahntestsuite import wstest; print(autobahntestsuite.__version__)"
)


class AutobahnError(RuntimeError):
    """wstest missing, crashed, timed out, or produced no results."""


class CaseResult(TypedDict):
    behavior: str          # OK / NON-STRICT / INFORMATIONAL / FAILED / UNIMPLEMENTED
    behaviorClose: str     # OK / FAILED / WRONG CODE / UNCLEAN / FAILED BY CLIENT / INFORMATIONAL
    remoteCloseCode: int | None
    duration: int          # ms
    reportfile: str        # per-case JSON, relative to outdir


class FuzzingResult(TypedDict):
    agent: str
    url: str
    outdir: str
    cases: dict[str, CaseResult]      # case id ("1.1.1") -> result, in case order
    summary: dict[str, int]           # counts of "behavior" (+ "MISSING")
    close_summary: dict[str, int]     # counts of "behaviorClose"
    missing: list[str]                # cases wstest planned but never reported
    elapsed: float                    # seconds wstest ran
    log: str                          # path of wstest's output


# --- locating the installation ----------------------------------------------

def autobahn_prefix() -> Path:
    """Install prefix, by the same rule as .ci/install-autobahn."""
    env = os.environ.get("WS4REDIS_AUTOBAHN_PREFIX")
    return Path(env) if env else REPO_ROOT / ".cache" / "autobahn"


def site_dir(prefix: Path | None = None) -> Path:
    return (prefix or autobahn_prefix()) / "lib" / "python2.7" / "site-packages"


def _is_py27(path: str | Path) -> bool:
    try:
        r = subprocess.run(
            [str(path), "-c", "import sys; sys.exit(sys.version_info[:2] != (2, 7))"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def find_python27(prefix: Path | None = None) -> Path | None:
    """The Python 2.7 interpreter to run wstest with, or None.

    Prefers the one recorded in the prefix's stamp file: compiled extensions
    (cffi, wsaccel, ...) in the prefix are built for exactly that interpreter.
    """
    env = os.environ.get("WS4REDIS_AUTOBAHN_PYTHON")
    if env:
        return Path(env) if _is_py27(env) else None
    candidates: list[str] = []
    stamp = (prefix or autobahn_prefix()) / STAMP_NAME
    if stamp.is_file():
        for line in stamp.read_text().splitlines():
            if line.startswith("python "):
                candidates.append(line[len("python "):])
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv"), "/root/.pyenv"]
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            roots.insert(0, subprocess.run([pyenv, "root"], capture_output=True, text=True,
                                           timeout=30).stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            pass
    for root in filter(None, roots):
        candidates.append(os.path.join(root, "versions", "2.7.18", "bin", "python"))
        candidates.extend(sorted(glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python")),
                          reverse=True))
    which = shutil.which("python2.7")
    if which:
        candidates.append(which)
    for c in candidates:
        if os.path.isfile(c) and _is_py27(c):
            return Path(c)
    return None


def _clean_env() -> dict[str, str]:
    # A py3 venv's PYTHONPATH/PYTHONHOME must not leak into the py2 process.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"   # so wstest.log is complete even if we kill it
    env["PYTHONWARNINGS"] = "ignore"  # cryptography's "Python 2 is no longer supported"
    return env


def autobahn_available(prefix: Path | None = None) -> tuple[bool, str]:
    """(True, version) if wstest can be started, else (False, why + how to fix)."""
    prefix = prefix or autobahn_prefix()
    py = find_python27(prefix)
    if py is None:
        return False, ("no Python 2.7 interpreter found (pyenv 2.7.18 or python2.7; "
                       "or set WS4REDIS_AUTOBAHN_PYTHON)")
    sd = site_dir(prefix)
    if not sd.is_dir():
        return False, f"autobahntestsuite not installed in {prefix}: run .ci/install-autobahn"
    try:
        r = subprocess.run([str(py), "-c", _IMPORT_CHECK, str(sd)], capture_output=True,
                           text=True, env=_clean_env(), timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"cannot run {py}: {e}"
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
        return False, (f"autobahntestsuite in {prefix} does not import under {py} "
                       f"({tail[0]}): re-run .ci/install-autobahn")
    return True, f"autobahntestsuite {r.stdout.strip()} ({py}, {prefix})"


def install_autobahn(prefix: Path | None = None, timeout: float = 900) -> None:
    """Run .ci/install-autobahn (quick no-op when already installed)."""
    cmd = ["bash", str(INSTALL_SCRIPT)] + ([str(prefix)] if prefix else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AutobahnError(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")


# --- running -----------------------------------------------------------------

def _case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in case_id.split(".") if p.isdigit())


def _planned_cases(log_text: str) -> list[str] | None:
    # wstest prints "Cases = ['1.1.1', ...]" (a py2 repr) before starting.
    m = re.search(r"^Cases = (\[.*\])\s*$", log_text, re.M)
    if not m:
        return None
    try:
        return [str(c) for c in ast.literal_eval(m.group(1))]
    except (ValueError, SyntaxError):
        return None


def _kill_group(proc: subprocess.Popen) -> None:
    # wstest runs in its own session; kill that process group, nothing else.
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no output)"


def run_fuzzingclient(
    url: str,
    cases: Sequence[str] = DEFAULT_CASES,
    outdir: Path | str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    agent: str = "ws4redis",
    exclude_cases: Sequence[str] = (),
    options: dict | None = None,
    prefix: Path | None = None,
) -> FuzzingResult:
    """Run ``wstest -m fuzzingclient`` against ``url`` and parse its report.

    ``cases``/``exclude_cases`` take Autobahn patterns ("1.*", "6.4.1").
    ``outdir`` gets spec.json, wstest.log and the reports; it defaults to
    ``<repo>/.cache/autobahn-reports/<agent>``.  ``options`` are extra
    per-server wstest protocol options (e.g. {"openHandshakeTimeout": 5}).
    Raises AutobahnError if wstest is missing, times out, or reports nothing
    for ``agent`` (e.g. the server refused the connection).
    """
    if not agent or not re.search(r"[A-Za-z0-9]", agent):
        raise ValueError("agent must contain letters or digits (it names the report files)")
    prefix = prefix or autobahn_prefix()
    py = find_python27(prefix)
    sd = site_dir(prefix)
    if py is None or not sd.is_dir():
        raise AutobahnError(autobahn_available(prefix)[1])
    out = Path(outdir) if outdir else REPO_ROOT / ".cache" / "autobahn-reports" / re.sub(
        r"[^a-z0-9]+", "_", agent.lower())
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    index_path = out / "index.json"
    # A stale index from an earlier run must not pass for this run's result.
    index_path.unlink(missing_ok=True)

    spec = {
        "outdir": str(out),
        "options": {"failByDrop": False},
        "servers": [{"agent": agent, "url": url, "options": dict(options or {})}],
        "cases": list(cases),
        "exclude-cases": list(exclude_cases),
        "exclude-agent-cases": {},
    }
    spec_path = out / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    log_path = out / "wstest.log"

    cmd = [str(py), "-c", _BOOTSTRAP, str(sd), "-m", "fuzzingclient", "-s", str(spec_path)]
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=str(out), env=_clean_env(), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise AutobahnError(f"wstest timed out after {timeout:.0f}s against {url}; "
                                f"log {log_path}:\n{_tail(log_path)}") from None
        except BaseException:
            _kill_group(proc)  # e.g. KeyboardInterrupt: don't leave wstest behind
            raise
    elapsed = time.monotonic() - started

    if rc != 0 or not index_path.is_file():
        raise AutobahnError(f"wstest exited {rc} without a report; log {log_path}:\n"
                            f"{_tail(log_path)}")
    index = json.loads(index_path.read_text())
    raw = index.get(agent)
    if not raw:
        raise AutobahnError(f"wstest reported no case for agent {agent!r} (server at {url} "
                            f"unreachable or closed every connection?); log {log_path}:\n"
                            f"{_tail(log_path)}")

    case_results: dict[str, CaseResult] = {cid: raw[cid] for cid in sorted(raw, key=_case_key)}
    summary = {b: 0 for b in BEHAVIORS}
    close_summary: dict[str, int] = {}
    for c in case_results.values():
        summary[c["behavior"]] = summary.get(c["behavior"], 0) + 1
        close_summary[c["behaviorClose"]] = close_summary.get(c["behaviorClose"], 0) + 1
    # If the server dies mid-run, wstest stops and reports only what it ran.
    planned = _planned_cases(log_path.read_text(errors="replace")) or []
    missing = [c for c in planned if c not in case_results]
    summary["MISSING"] = len(missing)

    return FuzzingResult(agent=agent, url=url, outdir=str(out), cases=case_results,
                         summary=summary, close_summary=close_summary, missing=missing,
                         elapsed=round(elapsed, 2), log=str(log_path))


# --- reporting ---------------------------------------------------------------

def failed_cases(
    result: FuzzingResult,
    behaviors: Iterable[str] = FAIL_BEHAVIORS,
    close_behaviors: Iterable[str] = FAIL_CLOSE_BEHAVIORS,
) -> list[str]:
    """Ids of cases whose behavior or closing behavior counts as failed, plus missing ones."""
    bad, bad_close = set(behaviors), set(close_behaviors)
    ids = [cid for cid, c in result["cases"].items()
           if c["behavior"] in bad or c["behaviorClose"] in bad_close]
    return ids + list(result["missing"])


def _plain(text: str, limit: int) -> str:
    # Descriptions contain HTML (<br>, <b>); flatten them for an assert message.
    s = re.sub(r"<[^>]+>", " ", str(text))
    s = re.sub(r"\s+", " ", s).strip()
    return s if len(s) <= limit else s[: limit - 3] + "..."


def describe_failures(
    result: FuzzingResult,
    cases: Iterable[str] | None = None,
    limit: int = 25,
    width: int = 300,
) -> str:
    """Readable text about failed cases (from the per-case JSON), for assert messages."""
    ids = list(cases) if cases is not None else failed_cases(result)
    lines = [f"Autobahn [{result['agent']} @ {result['url']}] summary={result['summary']} "
             f"close={result['close_summary']}; {len(ids)} case(s) listed; reports in {result['outdir']}"]
    for cid in ids[:limit]:
        c = result["cases"].get(cid)
        if c is None:
            lines.append(f"- {cid}: MISSING (never reported; did the server die?)")
            continue
        detail: dict = {}
        try:
            detail = json.loads((Path(result["outdir"]) / c["reportfile"]).read_text())
        except (OSError, ValueError):
            pass
        lines.append(f"- {cid}: behavior={c['behavior']} close={c['behaviorClose']} "
                     f"remoteCloseCode={c['remoteCloseCode']}")
        for key in ("description", "expectation", "result", "resultClose"):
            if detail.get(key):
                lines.append(f"    {key}: {_plain(detail[key], width)}")
    if len(ids) > limit:
        lines.append(f"... and {len(ids) - limit} more")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Run the Autobahn fuzzingclient against a URL.")
    ap.add_argument("url")
    ap.add_argument("--agent", default="ws4redis")
    ap.add_argument("--outdir", type=Path)
    ap.add_argument("--cases", nargs="+", default=DEFAULT_CASES)
    ap.add_argument("--exclude", nargs="*", default=[])
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    args = ap.parse_args(argv)
    ok, why = autobahn_available()
    if not ok:
        print(why, file=sys.stderr)
        return 2
    res = run_fuzzingclient(args.url, args.cases, args.outdir, args.timeout, args.agent,
                            args.exclude)
    print(json.dumps({"summary": res["summary"], "close_summary": res["close_summary"],
                      "elapsed": res["elapsed"], "outdir": res["outdir"]}, indent=2))
    bad = failed_cases(res)
    if bad:
        print(describe_failures(res), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
