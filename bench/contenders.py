"""The servers the comparison runs: how each one starts, where its clients connect, how it is published to.

Every contender is a ``tests/servers.py`` ServerMode (so ``Server`` starts it,
waits for it and stops it and its children by PID) plus what the load needs:
the websocket paths and how the publisher reaches its subscribers.  Each runs
with ``workers`` worker processes (1 unless the two-workers scenario asks for
2) on 127.0.0.1, against its own redis-server, with no heartbeat and nothing
kept in Redis.  Accept limits are raised so that 10,000 sockets fit in one
worker: gunicorn's ``--worker-connections``, uWSGI's ``--gevent`` cores,
nginx's ``worker_connections``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
from servers import BIN, PYTHON, ServerMode, nginx_binary, nginx_command, nginx_dir, uwsgi_command  # noqa: E402

CACHE = ROOT / ".cache" / "bench"
CORES = 10000  # gevent cores / worker connections: room for the largest connections scenario


@dataclasses.dataclass
class Contender:
    name: str
    label: str
    #: (port, workdir, redis_url, workers) -> the ServerMode to start.
    mode: Callable[[int, Path, str, int], ServerMode]
    #: Environment on top of the test project's (Server.env()).
    env: Callable[[str], Dict[str, str]] = lambda redis_url: {"WS4REDIS_TEST_HEARTBEAT": "", "WS4REDIS_TEST_EXPIRE": "0"}
    #: Subscribers connect here; a client-publish socket at pub_path ({i}: its index).
    sub_path: str = "/ws/bench?subscribe-broadcast"
    pub_path: str = "/ws/rt{i}?subscribe-broadcast&publish-broadcast&echo"
    #: The Channels layer ("pubsub" or "core") the publisher uses, or None: PUBLISH to Redis.
    layer: Optional[str] = None
    #: The Python the publisher runs under (the contender's virtualenv).
    python: str = PYTHON
    #: Redis connections per subscriber socket (ws4redis 0.6: one each): the subscription check waits for them.
    numsub_per_socket: int = 0
    max_workers: int = 2
    #: Runs of each burst and publish size at most: 1 where one run can take a minute (Channels, ws4redis 0.6).
    max_runs: int = 100
    missing: Callable[[], Optional[str]] = lambda: None


def _fixed(command: Callable[[int, Path, str, int], List[str]], name: str, backends=None) -> Callable[[int, Path, str, int], ServerMode]:
    def mode(port: int, workdir: Path, redis_url: str, workers: int) -> ServerMode:
        return ServerMode(name, lambda p, w: command(p, w, redis_url, workers),
                          backends=(lambda p, w: backends(p, w, workers)) if backends else (lambda p, w: []))
    return mode


def _gunicorn(worker: str) -> Callable[[int, Path, str, int], List[str]]:
    return lambda port, workdir, redis, workers: [
        str(BIN / "gunicorn"), "-c", "python:ws4redis_mw.gunicorn_conf", "-k", worker, "--no-control-socket",
        "-w", str(workers), "--worker-connections", str(CORES), "--backlog", "2048",
        "-b", f"127.0.0.1:{port}", "--log-level", "warning", "tests.project.wsgi:application"]


def _uwsgi(port: int, workdir: Path, redis: str, workers: int) -> List[str]:
    return uwsgi_command("--http", f"127.0.0.1:{port}", "--http-websockets", "--gevent", str(CORES),
                         "--gevent-early-monkey-patch", "--processes", str(workers), "--listen", "1024",
                         "--disable-logging")


def _uwsgi_http_socket(port: int, workdir: Path, redis: str, workers: int) -> List[str]:
    # The workers speak HTTP themselves: no --http router process relaying every frame.
    return uwsgi_command("--http-socket", f"127.0.0.1:{port}", "--http-websockets", "--gevent", str(CORES),
                         "--gevent-early-monkey-patch", "--processes", str(workers), "--listen", "1024",
                         "--disable-logging")


def _nginx(port: int, workdir: Path, redis: str, workers: int) -> List[str]:
    prefix = nginx_dir(port, workdir)
    command = nginx_command(port, prefix)
    conf = prefix / "nginx.conf"
    # Sized for the bench's sockets (two connections per proxied websocket), not the tests'.
    text = re.sub(r"worker_connections \d+;", f"worker_connections {3 * CORES};", conf.read_text())
    conf.write_text(re.sub(r"worker_rlimit_nofile \d+;", f"worker_rlimit_nofile {4 * CORES};", text))
    return command


def _nginx_backends(port: int, workdir: Path, workers: int):
    prefix = nginx_dir(port, workdir)
    django, web = prefix / "django.socket", prefix / "web.socket"
    return [
        (uwsgi_command("--socket", str(django), "--workers", "1", "--chmod-socket=666", "--disable-logging"), django),
        (uwsgi_command("--http-socket", str(web), "--gevent", str(CORES), "--http-websockets", "--gevent-early-monkey-patch",
                       "--processes", str(workers), "--listen", "1024", "--chmod-socket=666", "--disable-logging"), web),
    ]


def _uwsgi_missing() -> Optional[str]:
    return None if (BIN / "uwsgi").exists() else f"uwsgi is not installed in {BIN.parent} (bench/setup.sh)"


def _venv_missing(name: str) -> Callable[[], Optional[str]]:
    return lambda: None if (CACHE / name / ".ready").exists() else f"{CACHE / name} is not set up (bench/setup.sh)"


def _ws4redis06(port: int, workdir: Path, redis: str, workers: int) -> List[str]:
    # As its docs run it: uwsgi --http :80 --gevent 100 --http-websockets --module wsgi (no monkey patch).
    return [str(CACHE / "ws4redis06" / "bin" / "uwsgi"), "--module", "ws4redis06_site.wsgi", "--master", "--die-on-term",
            "--http", f"127.0.0.1:{port}", "--http-websockets", "--gevent", str(CORES), "--processes", str(workers),
            "--listen", "1024", "--disable-logging"]


def _daphne(port: int, workdir: Path, redis: str, workers: int) -> List[str]:
    return [str(CACHE / "channels" / "bin" / "daphne"), "-b", "127.0.0.1", "-p", str(port), "--verbosity", "0",
            "channels_site.asgi:application"]


def _bare(port: int, workdir: Path, redis: str, workers: int) -> List[str]:
    return [PYTHON, str(HERE / "bare.py"), "--port", str(port), "--redis", redis, "--workers", str(workers)]


def _site_env(settings: str, **extra: str) -> Callable[[str], Dict[str, str]]:
    return lambda redis: {"DJANGO_SETTINGS_MODULE": settings, "PYTHONPATH": str(HERE), "BENCH_REDIS": redis, **extra}


CONTENDERS: List[Contender] = [
    Contender("mw-pywsgi", "ws4redis_mw, pywsgi runner",
              _fixed(lambda port, w, r, n: [PYTHON, "-m", "ws4redis_mw.serve", "tests.project.wsgi:application",
                                            "--bind", f"127.0.0.1:{port}", "--log-level", "warning"], "mw-pywsgi"),
              max_workers=1),
    Contender("mw-gunicorn-pywsgi", "ws4redis_mw, gunicorn -k gevent_pywsgi", _fixed(_gunicorn("gevent_pywsgi"), "mw-gunicorn-pywsgi")),
    Contender("mw-gunicorn-gws", "ws4redis_mw, gunicorn GeventWebSocketWorker",
              _fixed(_gunicorn("geventwebsocket.gunicorn.workers.GeventWebSocketWorker"), "mw-gunicorn-gws")),
    Contender("mw-uwsgi", "ws4redis_mw, uWSGI --gevent", _fixed(_uwsgi, "mw-uwsgi"), missing=_uwsgi_missing),
    Contender("mw-uwsgi-http-socket", "ws4redis_mw, uWSGI --gevent --http-socket", _fixed(_uwsgi_http_socket, "mw-uwsgi-http-socket"),
              missing=_uwsgi_missing),
    Contender("mw-nginx-uwsgi", "ws4redis_mw, nginx + uWSGI", _fixed(_nginx, "mw-nginx-uwsgi", _nginx_backends),
              missing=lambda: _uwsgi_missing() or (None if nginx_binary() else "nginx is not installed")),
    Contender("ws4redis06", "django-websocket-redis 0.6, uWSGI --gevent", _fixed(_ws4redis06, "ws4redis06"),
              env=_site_env("ws4redis06_site.settings"), python=str(CACHE / "ws4redis06" / "bin" / "python"),
              numsub_per_socket=1, max_runs=1, missing=_venv_missing("ws4redis06")),
    Contender("channels-pubsub", "Channels 4, RedisPubSubChannelLayer, daphne", _fixed(_daphne, "channels-pubsub"),
              env=_site_env("channels_site.settings", BENCH_LAYER="pubsub"), layer="pubsub",
              python=str(CACHE / "channels" / "bin" / "python"), max_workers=1, max_runs=1, missing=_venv_missing("channels")),
    Contender("channels-core", "Channels 4, RedisChannelLayer (default), daphne", _fixed(_daphne, "channels-core"),
              env=_site_env("channels_site.settings", BENCH_LAYER="core"), layer="core",
              python=str(CACHE / "channels" / "bin" / "python"), max_workers=1, max_runs=1, missing=_venv_missing("channels")),
    Contender("bare", "bare gevent-websocket (reference)", _fixed(_bare, "bare"), env=lambda redis: {},
              sub_path="/ws/bench", pub_path="/ws/rt{i}"),
]

BY_NAME = {c.name: c for c in CONTENDERS}


def trivial_mode(messages: int) -> ServerMode:
    """The calibration server (bench/trivial.py): the generator's ceiling."""
    return ServerMode("trivial", lambda port, workdir: [PYTHON, str(HERE / "trivial.py"), "--port", str(port), "--messages", str(messages)])


def node_binary() -> Optional[str]:
    return shutil.which("node") if (CACHE / "node" / "node_modules" / "ws").exists() else None


def generator_command(kind: str, spec_json: str) -> List[str]:
    if kind == "node":
        return [node_binary() or "node", str(HERE / "loadgen.js"), spec_json]
    return [PYTHON, str(HERE / "loadgen.py"), spec_json]


def generator_env() -> Dict[str, str]:
    return {**os.environ, "NODE_PATH": str(CACHE / "node" / "node_modules")}
