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
"""

from __future__ import annotations

import os
import socket
import threading
from typing import TYPE_CHECKING, Any, Dict, Union

import redis
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection, parse_url

if TYPE_CHECKING:
    import gevent.socket

__all__ = ["connection_kwargs", "get_client", "hub_connection"]

_clients: Dict[Any, redis.Redis] = {}
_clients_lock = threading.Lock()


def connection_kwargs(config: Union[Dict[str, Any], str]) -> Dict[str, Any]:
    """redis-py ``Connection`` arguments from a settings dict or a URL.

    URLs are ``redis://[:password@]host[:port][/db]``, ``rediss://...`` (TLS)
    and ``unix:///path/to/redis.sock[?db=N]``.
    """
    if isinstance(config, str):
        kwargs: Dict[str, Any] = parse_url(config)
    else:
        kwargs = {k: v for k, v in dict(config).items() if v is not None or k == "password"}
    return kwargs


def _connection_class(kwargs: Dict[str, Any]) -> type:
    return kwargs.pop("connection_class", None) or (UnixDomainSocketConnection if "path" in kwargs else Connection)


#: Connections the publisher's pool opens at most per process, and seconds a
#: publish waits for one to be free.  Bounded, because under gevent every
#: concurrent request is a greenlet and an unbounded pool opens one
#: connection for each request that publishes at the same moment.
PUBLISHER_MAX_CONNECTIONS = 4
PUBLISHER_POOL_TIMEOUT = 5.0


def get_client(config: Union[Dict[str, Any], str]) -> redis.Redis:
    """The process's redis-py client for ``config`` (one bounded pool per process and config)."""
    key = (os.getpid(), repr(config))
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                kwargs = connection_kwargs(config)
                pool = redis.BlockingConnectionPool(
                    connection_class=_connection_class(kwargs),
                    max_connections=PUBLISHER_MAX_CONNECTIONS,
                    timeout=PUBLISHER_POOL_TIMEOUT,
                    **kwargs,
                )
                client = _clients[key] = redis.Redis(connection_pool=pool)
    return client


class GeventConnection(Connection):
    """A TCP connection whose socket is always a gevent socket."""

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


def hub_connection(config: Union[Dict[str, Any], str], **overrides: Any) -> Connection:
    """A single connection with a gevent socket, for the hub's greenlets."""
    from gevent import monkey

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
