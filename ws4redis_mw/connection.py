"""Redis connections: from ``WS4REDIS_CONNECTION`` to redis-py objects.

Two kinds are made here:

* the publisher's client (:func:`get_client`), an ordinary redis-py client
  with one pool per process, used from Django code in whatever thread or
  greenlet it runs;
* the hub's connections (:func:`hub_connection`), single redis-py
  ``Connection`` objects whose sockets are gevent sockets even when the
  process is not monkey-patched (uWSGI ``--gevent`` without
  ``--gevent-monkey-patch``, the development server), so that waiting on
  Redis never blocks the other greenlets.

Under Redis Cluster (``redis+cluster://host:port,host:port/`` or a dict with
``cluster_nodes``) the publisher's client is a ``redis.cluster.RedisCluster``
and the hub connects to each master itself (:func:`node_config` makes the
configuration of one node, which :func:`hub_connection` takes like any other).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

import redis
from redis.backoff import NoBackoff
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

if TYPE_CHECKING:
    import gevent.socket

__all__ = ["connection_kwargs", "get_client", "hub_connection", "is_sentinel", "sentinel_config", "discover_master",
           "is_cluster", "cluster_config", "node_config"]

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
CLUSTER_SCHEME = "redis+cluster"
CLUSTER_PORT = 6379

_clients: Dict[Any, redis.Redis] = {}
_clients_lock = threading.Lock()


def connection_kwargs(config: Union[Dict[str, Any], str]) -> Dict[str, Any]:
    """redis-py ``Connection`` arguments from a settings dict or a URL.

    URLs are ``redis://[:password@]host[:port][/db]``, ``rediss://...`` (TLS)
    and ``unix:///path/to/redis.sock[?db=N]``.  A dict holds what ws4redis
    passed to ``redis.StrictRedis(**WS4REDIS_CONNECTION)``: the client's
    ``unix_socket_path`` and ``ssl=True`` become the connection's ``path``
    and TLS class, as ``redis.Redis`` itself makes them, and the ``ssl_*``
    options count only with ``ssl=True``.
    """
    if isinstance(config, str):
        kwargs: Dict[str, Any] = parse_url(config)
        return kwargs
    kwargs = {k: v for k, v in dict(config).items() if v is not None or k == "password"}
    path = kwargs.pop("unix_socket_path", None)
    ssl = bool(kwargs.pop("ssl", False))
    if not ssl:
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("ssl_")}
    if path is not None:
        kwargs = {k: v for k, v in kwargs.items() if k not in ("host", "port") and not k.startswith("ssl_")}
        kwargs.update(path=path, connection_class=UnixDomainSocketConnection)
    elif ssl:
        kwargs["connection_class"] = SSLConnection
    return kwargs


def is_sentinel(config: Union[Dict[str, Any], str]) -> bool:
    """Whether ``config`` names a Redis Sentinel set-up."""
    if isinstance(config, str):
        return config.startswith(SENTINEL_SCHEME + "://")
    return "sentinels" in config


def is_cluster(config: Union[Dict[str, Any], str]) -> bool:
    """Whether ``config`` names a Redis Cluster (its channels then use sharded pub/sub)."""
    if isinstance(config, str):
        return config.startswith(CLUSTER_SCHEME + "://")
    return "cluster_nodes" in config


def _hosts(text: str, default_port: int) -> List[Tuple[str, int]]:
    hosts = []
    for host in text.split(","):
        name, _, port = host.rpartition(":")
        if not name or host.endswith("]"):  # no port given
            name, port = host, ""
        hosts.append((name.strip("[]"), int(port or default_port)))
    return hosts


def _credentials(netloc: str) -> Tuple[str, Dict[str, Any]]:
    """The hosts part of a URL's ``netloc`` and the ``username``/``password`` before its ``@``, unquoted."""
    userinfo, _, hosts = netloc.rpartition("@")
    kwargs: Dict[str, Any] = {}
    username, _, password = userinfo.partition(":")
    if username:
        kwargs["username"] = urllib.parse.unquote(username)
    if password:
        kwargs["password"] = urllib.parse.unquote(password)
    return hosts, kwargs


def cluster_config(config: Union[Dict[str, Any], str]) -> Tuple[List[Tuple[str, int]], Dict[str, Any]]:
    """(startup nodes, arguments for every node's connection) of a cluster configuration.

    ``redis+cluster://[user:password@]host:port,host:port/``: any few nodes
    of the cluster; the others and who owns which slot are asked of them.  A
    cluster has only database 0, so no database is named.
    """
    if isinstance(config, str):
        url = urllib.parse.urlsplit(config)
        hosts, kwargs = _credentials(url.netloc)
        if url.path.strip("/") not in ("", "0"):
            raise ValueError(f"a Redis Cluster has only database 0: {config!r}")
        return _hosts(hosts, CLUSTER_PORT), kwargs
    rest = {k: v for k, v in dict(config).items() if v is not None or k == "password"}
    nodes = [(str(host), int(port)) for host, port in rest.pop("cluster_nodes")]
    if rest.pop("db", 0) not in (0, "0"):
        raise ValueError("a Redis Cluster has only database 0")
    return nodes, rest


def node_config(config: Union[Dict[str, Any], str], host: str, port: int) -> Dict[str, Any]:
    """The configuration of one node of the cluster ``config`` names, for :func:`hub_connection`."""
    _, kwargs = cluster_config(config)
    return {**kwargs, "host": host, "port": port}


SentinelConfig = Tuple[List[Tuple[str, int]], str, Dict[str, Any], Dict[str, Any]]


def sentinel_config(config: Union[Dict[str, Any], str]) -> SentinelConfig:
    """(sentinel addresses, service name, arguments for the master, arguments for the sentinels)."""
    if isinstance(config, str):
        url = urllib.parse.urlsplit(config)
        hosts, kwargs = _credentials(url.netloc)
        sentinels = _hosts(hosts, SENTINEL_PORT)
        parts = [urllib.parse.unquote(part) for part in url.path.split("/") if part]
        if not parts:
            raise ValueError(f"{SENTINEL_SCHEME}:// URL without a service name: {config!r}")
        if len(parts) > 1:
            kwargs["db"] = int(parts[1])
        query = dict(urllib.parse.parse_qsl(url.query))
        sentinel_kwargs = {key[len("sentinel_"):]: query.pop(key) for key in list(query) if key.startswith("sentinel_")}
        if "db" in query:
            kwargs["db"] = int(query.pop("db"))
        return sentinels, parts[0], kwargs, sentinel_kwargs
    rest = dict(config)
    sentinels = [(str(host), int(port)) for host, port in rest.pop("sentinels")]
    service_name = str(rest.pop("service_name"))
    sentinel_kwargs = dict(rest.pop("sentinel_kwargs", None) or {})
    return sentinels, service_name, {k: v for k, v in rest.items() if v is not None}, sentinel_kwargs


def discover_master(sentinels: List[Tuple[str, int]], service_name: str, sentinel_kwargs: Dict[str, Any],
                    timeout: Optional[float]) -> Tuple[str, int]:
    """The master's address, asked of every sentinel at once (over gevent sockets).

    The answer with the highest ``config-epoch`` wins: right after a failover
    the sentinel that ran it knows the new master before the others hear of
    it.  Sentinels that do not answer within ``timeout`` are left out, and
    one that sees the master down (``s_down``, ``o_down``) is not believed.
    """
    import gevent

    def ask(host: str, port: int) -> Tuple[int, str, int]:
        conn: Connection = GeventConnection(host=host, port=port, socket_timeout=timeout, socket_connect_timeout=timeout,
                                            protocol=2, lib_name=None, lib_version=None, **sentinel_kwargs)
        try:
            conn.connect()
            conn.send_command("SENTINEL", "MASTER", service_name, check_health=False)
            reply = conn.read_response()
        finally:
            conn.disconnect()
        fields = {reply[i].decode(): reply[i + 1].decode() for i in range(0, len(reply) - 1, 2)}
        if "s_down" in fields["flags"] or "o_down" in fields["flags"]:
            raise RedisConnectionError(f"sees master {fields['ip']}:{fields['port']} down ({fields['flags']})")
        return int(fields.get("config-epoch", 0)), fields["ip"], int(fields["port"])

    jobs = [gevent.spawn(ask, host, port) for host, port in sentinels]
    gevent.joinall(jobs, timeout=(timeout or 5.0) + 0.5)
    answers: List[Tuple[int, str, int]] = []
    errors: List[str] = []
    for (host, port), job in zip(sentinels, jobs, strict=True):
        if job.successful() and job.value is not None:
            answers.append(job.value)
        else:
            job.kill(block=False)
            errors.append(f"{host}:{port}: {job.exception or 'no answer in time'}")
    if not answers:
        raise RedisConnectionError(f"no sentinel gave the address of master {service_name!r} (" + "; ".join(errors) + ")")
    _, host, port = max(answers)
    return host, port


def _connection_class(kwargs: Dict[str, Any]) -> type:
    return kwargs.pop("connection_class", None) or (UnixDomainSocketConnection if "path" in kwargs else Connection)


#: Connections the publisher's pool opens at most per process, and the
#: default seconds a publish waits for one to be free or for a reply
#: (``WS4REDIS_PUBLISHER_TIMEOUT``).  Bounded, because under gevent every
#: concurrent request is a greenlet and an unbounded pool opens one
#: connection for each request that publishes at the same moment.
PUBLISHER_MAX_CONNECTIONS = 4
PUBLISHER_POOL_TIMEOUT = 3.0


def get_client(config: Union[Dict[str, Any], str], timeout: float = PUBLISHER_POOL_TIMEOUT) -> redis.Redis:
    """The process's redis-py client for ``config`` (one bounded pool per process and config).

    ``timeout`` bounds connecting, waiting for a pooled connection and each
    reply.  A connection error (a pooled connection Redis closed while idle)
    is retried once on a new connection; a timeout is not.
    """
    key = (os.getpid(), repr(config), timeout)
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = _make_client(config, timeout)
    follower = _followers.get(key)
    if follower is not None:
        follower.check()
    return client


class _MasterFollower:
    """Moves a Sentinel client's pool to a new master as soon as the sentinels name one.

    redis-py asks the sentinels only when it opens a connection, and a pooled
    connection to the old master keeps working until Sentinel reconfigures
    that server (seconds later, or never if it is cut off): publishes there
    reach nobody.  So the sentinels are asked at most every
    :data:`MASTER_CHECK_INTERVAL` seconds, when a publisher is made.
    """

    def __init__(self, sentinel: Any, service_name: str, client: redis.Redis):
        self.sentinel, self.service_name, self.client = sentinel, service_name, client
        self.master: Optional[Tuple[str, int]] = None
        self.checked = 0.0

    def check(self) -> None:
        now = time.monotonic()
        if now - self.checked < MASTER_CHECK_INTERVAL:
            return
        self.checked = now
        try:
            master = tuple(self.sentinel.discover_master(self.service_name))
        except RedisError:
            return  # the publish will say what is wrong
        if self.master is not None and master != self.master:
            self.client.connection_pool.disconnect()
        self.master = (str(master[0]), int(master[1]))


#: Seconds between two questions to the sentinels from the publisher.
MASTER_CHECK_INTERVAL = 1.0
_followers: Dict[Any, _MasterFollower] = {}


def _make_client(config: Union[Dict[str, Any], str], timeout: float) -> redis.Redis:
    limits = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
              "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))}
    if is_sentinel(config):
        from redis.sentinel import Sentinel

        sentinels, service_name, kwargs, sentinel_kwargs = sentinel_config(config)
        sentinel = Sentinel(sentinels, sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout,
                                                        **sentinel_kwargs})
        client: redis.Redis = sentinel.master_for(service_name, **{**kwargs, **limits})
        _followers[(os.getpid(), repr(config), timeout)] = follower = _MasterFollower(sentinel, service_name, client)
        follower.check()
        return client
    if is_cluster(config):
        from redis.cluster import ClusterNode, RedisCluster

        nodes, kwargs = cluster_config(config)
        # One pool per node, as redis-py makes them; a publish is routed to the
        # master of its channel's slot, and redis-py follows MOVED by itself.
        cluster: redis.Redis = RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in nodes],  # type: ignore[assignment]
                                            socket_timeout=timeout, socket_connect_timeout=timeout, **kwargs)
        return cluster
    kwargs = connection_kwargs(config)
    pool = redis.BlockingConnectionPool(
        connection_class=_connection_class(kwargs),
        max_connections=PUBLISHER_MAX_CONNECTIONS,
        timeout=timeout,
        **{**kwargs, **limits},
    )
    return redis.Redis(connection_pool=pool)


class GeventConnection(Connection):
    """A TCP connection whose socket is always a gevent socket."""

    def __init__(self, **kwargs: Any) -> None:
        Connection.__init__(self, **kwargs)

    def _connect(self) -> gevent.socket.socket:
        import gevent.socket

        sock = gevent.socket.create_connection((self.host, self.port), timeout=self.socket_connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.socket_keepalive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.settimeout(self.socket_timeout)
        return sock


class GeventUnixConnection(UnixDomainSocketConnection):
    """A unix-socket connection whose socket is always a gevent socket."""

    def _connect(self) -> gevent.socket.socket:
        import gevent.socket

        sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.socket_connect_timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.socket_timeout)
        return sock


class SentinelConnection(GeventConnection):
    """A gevent TCP connection to whichever server the sentinels name as master, checked with ``ROLE``."""

    def __init__(self, *, sentinels: List[Tuple[str, int]], service_name: str, sentinel_kwargs: Dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.sentinels, self.service_name, self.sentinel_kwargs = sentinels, service_name, sentinel_kwargs

    def connect(self) -> None:
        self.host, self.port = discover_master(self.sentinels, self.service_name, self.sentinel_kwargs, self.socket_connect_timeout)
        Connection.connect(self)
        Connection.send_command(self, "ROLE", check_health=False)
        role = self.read_response()
        if not role or role[0] != b"master":
            Connection.disconnect(self)
            raise RedisConnectionError(f"{self.host}:{self.port}, named master of {self.service_name!r}, is not a master (yet)")


def hub_connection(config: Union[Dict[str, Any], str], **overrides: Any) -> Connection:
    """A single connection with a gevent socket, for the hub's greenlets."""
    from gevent import monkey

    if is_sentinel(config):
        sentinels, service_name, kwargs, sentinel_kwargs = sentinel_config(config)
        return SentinelConnection(sentinels=sentinels, service_name=service_name, sentinel_kwargs=sentinel_kwargs,
                                  **{**kwargs, **overrides})

    kwargs = {**connection_kwargs(config), **overrides}
    cls = _connection_class(kwargs)
    if not monkey.is_module_patched("socket"):
        if issubclass(cls, SSLConnection):
            raise RuntimeError(
                "rediss:// needs gevent's monkey-patching (gevent.monkey.patch_all() or "
                "uWSGI --gevent-monkey-patch) so that TLS sockets cooperate with gevent"
            )
        cls = GeventUnixConnection if issubclass(cls, UnixDomainSocketConnection) else GeventConnection
    connection: Connection = cls(**kwargs)
    return connection
