"""Real processes for the tests: redis-server and the server modes.

Every process is started on 127.0.0.1 (or a unix socket in a temporary
directory), waited for, and stopped by its own PID.  ``SERVER_MODES`` is the
one list the protocol suite runs against; each mode says how to start the
test project's ``wsgi.py`` under one server.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: Optional[subprocess.Popen] = None, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout}s")


def wait_for_unix_socket(path: Path, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {path}")
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(path))
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {path} within {timeout}s")


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def redis_server_binary() -> Optional[str]:
    return shutil.which("redis-server") or (str(BIN / "redis-server") if (BIN / "redis-server").exists() else None)


class RedisServer:
    """A throwaway redis-server on a fixed free port, which can be stopped and started again.

    With ``unix_socket=True`` it also listens on ``workdir/redis.sock``, and
    :attr:`unix_url` names it.
    """

    def __init__(self, workdir: Path, unix_socket: bool = False, extra_args: Tuple[str, ...] = ()):
        self.port = free_port()
        self.workdir = workdir
        self.unix_path = workdir / "redis.sock" if unix_socket else None
        self.extra_args = extra_args
        self.proc: Optional[subprocess.Popen] = None

    @property
    def unix_url(self) -> str:
        return f"unix://{self.unix_path}?db=0"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server not found")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--maxclients", "10000",
             *(["--unixsocket", str(self.unix_path)] if self.unix_path else []), *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)


class SentinelSet:
    """A master, a replica and three sentinels (``redis-server --sentinel``) on 127.0.0.1, service ``mymaster``."""

    SERVICE = "mymaster"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        (workdir / "master").mkdir()
        (workdir / "replica").mkdir()
        self.master = RedisServer(workdir / "master")
        self.replica = RedisServer(workdir / "replica", extra_args=("--replicaof", "127.0.0.1", str(self.master.port)))
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: List[subprocess.Popen] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"

    def start(self) -> None:
        import redis

        self.master.start()
        self.replica.start()
        binary = redis_server_binary()
        for port in self.sentinel_ports:
            conf = self.workdir / f"sentinel-{port}.conf"
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master.port} 2\n"
                            f"sentinel down-after-milliseconds {self.SERVICE} 2000\n"
                            f"sentinel failover-timeout {self.SERVICE} 10000\n")
            self.sentinels.append(subprocess.Popen([binary, str(conf), "--sentinel"],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for_port(port, self.sentinels[-1])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            known = [redis.Redis(port=port).sentinel_slaves(self.SERVICE) for port in self.sentinel_ports]
            if all(replicas and replicas[0].get("master-link-status") == "ok" for replicas in known):
                return
            time.sleep(0.2)
        raise TimeoutError("the sentinels did not find the replica in time")

    def master_port(self) -> int:
        import redis

        return int(redis.Redis(port=self.sentinel_ports[0]).sentinel_get_master_addr_by_name(self.SERVICE)[1])

    def failover(self, timeout: float = 30.0) -> None:
        """SENTINEL FAILOVER, then wait until every sentinel names the replica and it says it is master."""
        import redis

        old = self.master_port()
        redis.Redis(port=self.sentinel_ports[0]).execute_command("SENTINEL", "FAILOVER", self.SERVICE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ports = {int(redis.Redis(port=port).sentinel_get_master_addr_by_name(self.SERVICE)[1]) for port in self.sentinel_ports}
            if ports == {self.replica.port} != {old} and redis.Redis(port=self.replica.port).execute_command("ROLE")[0] == b"master":
                return
            time.sleep(0.1)
        raise TimeoutError("no failover in time")

    def stop(self) -> None:
        for proc in self.sentinels:
            stop_process(proc)
        self.sentinels = []
        self.replica.stop()
        self.master.stop()


def redis_version() -> Tuple[int, ...]:
    """The version of the redis-server binary, (0,) if none."""
    binary = redis_server_binary()
    if binary is None:
        return (0,)
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    version = out.split("v=", 1)[1].split()[0]
    return tuple(int(part) for part in version.split("."))


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 < 65536:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


class RedisClusterSet:
    """``masters`` redis-server processes with ``cluster-enabled yes`` on 127.0.0.1, each with ``replicas`` replicas.

    Three or more masters are joined by ``redis-cli --cluster create``
    (which wants at least three); fewer get the slots split by hand
    (``CLUSTER ADDSLOTSRANGE``, ``CLUSTER MEET``) and can have no replicas.
    :attr:`url` is the ``redis+cluster://`` form of ``WS4REDIS_CONNECTION``
    and names every node.  Which node is master changes with a failover:
    :meth:`master_ports` and :meth:`replica_of` ask the cluster.
    ``node_timeout`` (ms) is how long a master may be silent before its
    replica takes over.
    """

    def __init__(self, workdir: Path, masters: int = 3, extra_args: Tuple[str, ...] = (), replicas: int = 0,
                 node_timeout: int = 5000):
        if replicas and masters < 3:
            raise ValueError("replicas need redis-cli --cluster create, hence three masters or more")
        self.workdir = workdir
        self.replicas = replicas
        self.nodes: List[RedisServer] = []
        for i in range(masters * (1 + replicas)):
            node_dir = workdir / f"cluster-{i}"
            node_dir.mkdir(parents=True, exist_ok=True)
            node = RedisServer(node_dir, extra_args=("--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf"),
                                                     "--cluster-node-timeout", str(node_timeout), *extra_args))
            node.port = free_cluster_port()
            self.nodes.append(node)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes) + "/"

    @property
    def ports(self) -> List[int]:
        return [node.port for node in self.nodes]

    def node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def start(self, timeout: float = 30.0) -> None:
        import redis

        for node in self.nodes:
            node.start()
        if len(self.nodes) >= 3:
            cli = shutil.which("redis-cli") or str(BIN / "redis-cli")
            subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{port}" for port in self.ports),
                            "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        else:
            step = 16384 // len(self.nodes)
            for i, node in enumerate(self.nodes):
                end = 16383 if i == len(self.nodes) - 1 else (i + 1) * step - 1
                redis.Redis(port=node.port).execute_command("CLUSTER", "ADDSLOTSRANGE", i * step, end)
                if i:
                    redis.Redis(port=node.port).execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = [redis.Redis(port=port).execute_command("CLUSTER", "INFO") for port in self.ports]
            if all(b"cluster_state:ok" in info and f"cluster_known_nodes:{len(self.ports)}".encode() in info for info in infos) \
                    and self._replicas_synced():
                return
            time.sleep(0.1)
        raise TimeoutError("the cluster did not come up in time")

    def _replicas_synced(self) -> bool:
        """Every replica has its master's link up (a replica that never synced cannot take over)."""
        import redis

        for port in self.ports:
            role = redis.Redis(port=port).execute_command("ROLE")
            if role[0] == b"slave" and role[3] != b"connected":
                return False
        return sum(len(redis.Redis(port=port).execute_command("ROLE")[2]) for port in self.master_ports()) == \
            len(self.nodes) - len(self.master_ports())

    def master_ports(self, asked: Optional[int] = None) -> List[int]:
        """The ports of the masters that serve slots, as ``CLUSTER SLOTS`` of one live node says."""
        import redis

        for port in [asked] if asked else self.ports:
            if self.node(port).proc is None or self.node(port).proc.poll() is not None:
                continue
            try:
                slots = redis.Redis(port=port).execute_command("CLUSTER", "SLOTS")
            except redis.ConnectionError:
                continue
            return sorted({int(entry[2][1]) for entry in slots})
        raise RuntimeError("no cluster node answers")

    def replica_of(self, master: int) -> int:
        """The port of a replica of the master at ``master``."""
        import redis

        replicas = redis.Redis(port=master).execute_command("ROLE")[2]
        return int(replicas[0][1])

    def client(self):
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port) for port in self.ports])

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@dataclasses.dataclass
class ServerMode:
    name: str
    #: Builds the command from (port, workdir); the server must listen on 127.0.0.1:port.
    command: Callable[[int, Path], List[str]]
    #: True where the server answers the 101 before our middleware runs, so
    #: refusals arrive as close frames, not HTTP statuses.
    refuses_after_upgrade: bool = False
    #: Why the mode cannot run on this machine, or None.
    unavailable: Callable[[], Optional[str]] = lambda: None
    #: Processes the command needs, from (port, workdir): (command, unix
    #: socket it listens on) pairs, started and waited for in order before
    #: it, stopped after it.
    backends: Callable[[int, Path], List[Tuple[List[str], Path]]] = lambda port, workdir: []


SERVER_MODES: List[ServerMode] = [
    ServerMode(
        "pywsgi",
        lambda port, _: [PYTHON, "-m", "ws4redis_mw.serve", "tests.project.wsgi:application",
                         "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
    ),
    ServerMode(
        "gunicorn-geventwebsocket",
        lambda port, workdir: [str(BIN / "gunicorn"), "-k", "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
                               "--no-control-socket", "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                               "tests.project.wsgi:application"],
        refuses_after_upgrade=True,
    ),
    ServerMode(
        "gunicorn-pywsgi",
        lambda port, workdir: [str(BIN / "gunicorn"), "-c", "python:ws4redis_mw.gunicorn_conf", "-k", "gevent_pywsgi",
                               "--no-control-socket", "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                               "tests.project.wsgi:application"],
    ),
    # uWSGI's helpers are below the list: the lambdas look them up when called.
    ServerMode(
        "uwsgi",
        lambda port, workdir: uwsgi_command("--http", f"127.0.0.1:{port}", "--http-websockets", "--gevent", "100",
                                            "--gevent-early-monkey-patch", "--buffer-size", "32768"),
        unavailable=lambda: uwsgi_missing(),
    ),
    ServerMode(
        "nginx-uwsgi",
        lambda port, workdir: nginx_command(port, nginx_dir(port, workdir)),
        unavailable=lambda: uwsgi_missing() or (None if nginx_binary() else "nginx is not installed (apt-get install nginx)"),
        backends=lambda port, workdir: nginx_backends(nginx_dir(port, workdir)),
    ),
    ServerMode(
        "runserver",
        lambda port, _: [PYTHON, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
    ),
]


# -- uWSGI, alone or behind nginx (examples/deploy/ has the same set-up, commented) --

def uwsgi_missing() -> Optional[str]:
    return None if (BIN / "uwsgi").exists() else f"uwsgi is not installed in {BIN.parent} (.ci/install-uwsgi)"


def uwsgi_command(*options: str) -> List[str]:
    # --master, so that the PID we start (never daemonized) is the one that
    # owns the workers and the --http router and ends them all when it ends;
    # uWSGI 2.0 reloads on SIGTERM unless --die-on-term.  The gevent
    # instances also get the early monkey patch, as a deployment would
    # (cooperative database drivers); never the plain one: a patched process
    # without uWSGI's gevent loop crashes in greenlet when it exits.
    return [str(BIN / "uwsgi"), "--module", "tests.project.wsgi", "--master", "--die-on-term", *options]


def nginx_binary() -> Optional[str]:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")  # not on a user's PATH


def nginx_dir(port: int, workdir: Path) -> Path:
    """nginx's prefix and the uWSGI sockets of one server, inside the test workdir."""
    path = workdir / f"nginx-uwsgi-{port}"
    path.mkdir(exist_ok=True)
    return path


def nginx_backends(prefix: Path) -> List[Tuple[List[str], Path]]:
    """Two uWSGI instances of the same code: Django on plain workers, websockets on gevent."""
    django, web = prefix / "django.socket", prefix / "web.socket"
    # uWSGI 2.0 takes a socket path as it is: "unix:/path" would be read as a TCP address.
    return [
        (uwsgi_command("--socket", str(django), "--workers", "2", "--chmod-socket=666", "--buffer-size", "32768"), django),
        (uwsgi_command("--http-socket", str(web), "--gevent", "1000", "--http-websockets", "--gevent-early-monkey-patch",
                       "--chmod-socket=666", "--buffer-size", "32768", "--socket-timeout", "10"), web),
    ]


#: The site config users install: the nginx mode serves this very file, only its port and paths changed.
NGINX_SITE = ROOT / "examples" / "deploy" / "nginx-site.conf"


def nginx_site(port: int, prefix: Path) -> str:
    """``examples/deploy/nginx-site.conf`` for one test server: its port, sockets and ``STATIC_ROOT`` in ``prefix``."""
    static = prefix / "staticfiles"
    (static / "ws4redis_mw").mkdir(parents=True, exist_ok=True)  # what collectstatic would put there
    shutil.copy(ROOT / "ws4redis_mw" / "static" / "ws4redis_mw" / "ws4redis.js", static / "ws4redis_mw" / "ws4redis.js")
    text = NGINX_SITE.read_text()
    for shipped, here in {"listen 80;": f"listen 127.0.0.1:{port};",
                          "/run/ws4redis-websocket/web.socket": str(prefix / "web.socket"),
                          "/run/ws4redis-django/django.socket": str(prefix / "django.socket"),
                          "/srv/mysite/staticfiles/": f"{static}/"}.items():
        assert text.count(shipped) == 1, f"{NGINX_SITE.name} no longer has {shipped!r} once: update tests/servers.py"
        text = text.replace(shipped, here)
    return text


def nginx_command(port: int, prefix: Path) -> List[str]:
    """Write nginx.conf into ``prefix`` (every path nginx uses is in there) and return the command."""
    # nginx's workers switch to `user` (default nobody) when the master runs
    # as root; they could not reach the sockets in the test workdir, which
    # pytest creates mode 0700, whatever the sockets' own 666.  So, as root
    # only (nginx ignores the directive otherwise), they stay root.
    user = "user root;" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind}_temp;" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (prefix / "site.conf").write_text(nginx_site(port, prefix))
    # worker_connections: two per proxied websocket (tests/test_deploy.py holds 2,500).
    (prefix / "nginx.conf").write_text(f"""\
# Written by tests/servers.py for one test server: the main config around examples/deploy/nginx-site.conf.
{user}
worker_processes 1;
worker_rlimit_nofile 16384;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
{temp}
    include {prefix}/site.conf;
}}
""")
    return [nginx_binary(), "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log"),
            "-g", "daemon off;"]


class Server:
    """One server mode running the test project."""

    def __init__(self, mode: ServerMode, redis_url: str, workdir: Path, env: Optional[Dict[str, str]] = None):
        self.mode = mode
        self.redis_url = redis_url
        self.workdir = workdir
        self.port = free_port()
        self.extra_env = env or {}
        self.proc: Optional[subprocess.Popen] = None
        self.backends: List[subprocess.Popen] = []
        self.log = None
        self.log_path = workdir / f"{mode.name}-{self.port}.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update({
            "DJANGO_SETTINGS_MODULE": "tests.project.settings",
            "WS4REDIS_TEST_REDIS": self.redis_url,
            "WS4REDIS_TEST_DB": str(self.workdir / "db.sqlite3"),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        if os.environ.get("WS4REDIS_FAST_TESTS") == "1":
            import pytest

            pytest.skip("fast tests only (nox): no server process")
        self.log = open(self.log_path, "ab")
        try:
            for command, path in self.mode.backends(self.port, self.workdir):
                self.backends.append(self._spawn(command))
                wait_for_unix_socket(path, self.backends[-1])
            self.proc = self._spawn(self.mode.command(self.port, self.workdir))
            wait_for_port(self.port, self.proc)
        except BaseException:
            self.stop()
            raise

    def _spawn(self, command: List[str]) -> subprocess.Popen:
        return subprocess.Popen(command, cwd=ROOT, env=self.env(), stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        import psutil

        procs = [p for p in (self.proc, *reversed(self.backends)) if p is not None]
        # Their children, looked up now, while they are still theirs: a child
        # left behind by a parent that died first (a uWSGI worker whose master
        # got SIGKILL) is ended here too, by its PID.
        children = []
        for proc in procs:
            try:
                children += psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        for proc in procs:
            stop_process(proc, sig)
        for child in psutil.wait_procs(children, timeout=5)[1]:
            child.kill()
        self.proc, self.backends = None, []
        if self.log is not None:
            self.log.close()
            self.log = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pids(self) -> List[int]:
        """The server's own PID and its children's (gunicorn workers), then the backends' likewise."""
        import psutil

        pids = []
        for proc in (self.proc, *self.backends):
            parent = psutil.Process(proc.pid)
            pids += [parent.pid] + [child.pid for child in parent.children(recursive=True)]
        return pids
