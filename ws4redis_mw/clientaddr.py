"""Whose address a request is: the visitor's, read through proxies we trust; no I/O.

Design rules of this module:

* The address a request counts as (per-address socket caps, the metrics
  allow-list, log lines) is the peer's, ``REMOTE_ADDR``, unless that peer is
  a **trusted proxy**: then it is the ``X-Forwarded-For`` entry as many hops
  from the right as ``WS4REDIS_TRUSTED_PROXIES`` trusts (werkzeug's
  ``ProxyFix(x_for=n)`` rule: each proxy appends the address it saw, so the
  rightmost entries are the ones our own proxies wrote, and anything to their
  left is whatever the client claimed).
* Whether the peer is trusted is decided here, from the peer's address only,
  never from a header.  A peer that is not trusted changes nothing by
  sending ``X-Forwarded-*`` headers: they are ignored.
* A peer whose ``REMOTE_ADDR`` is empty, missing, not an IP address or the
  unspecified address came over a unix socket (gunicorn puts ``""`` there,
  gevent's pywsgi nothing, uWSGI's ``http-socket`` ``0.0.0.0``, which no TCP
  peer can have): only a process on this host can connect there.
* The default (``None``) trusts a loopback peer (``127.0.0.0/8``, ``::1``)
  or a unix-socket peer for one hop: the documented deployment has nginx on
  the same host, talking to the server over a unix socket, and only a
  process of that host can be such a peer.
* A trusted peer whose header is malformed (fewer entries than hops, or not
  an IP address at the hop we read) is counted as itself, with a ``problem``
  for the caller to log: never an exception, never a 500.
* ``X-Forwarded-Proto`` from a trusted peer, read at the same hop, says
  whether the visitor came over TLS (``secure``).

:func:`from_environ` is the one reader of a WSGI environ; it keeps its
answer in the environ, so every part of one request sees the same address.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from typing import TYPE_CHECKING, Any, Optional, Tuple, Union

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["TrustedProxies", "Client", "trusted_proxies", "resolve", "from_environ", "CLIENT_KEY"]

logger = logging.getLogger("ws4redis_mw")

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IP = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

#: The environ key under which :func:`from_environ` keeps its answer.
CLIENT_KEY = "ws4redis_mw.client"

LOOPBACK: Tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclasses.dataclass(frozen=True)
class TrustedProxies:
    """Which peers are proxies whose ``X-Forwarded-*`` headers we read, and for how many hops."""

    #: Peer networks trusted; ``None``: every peer (a count of hops was given).
    networks: Optional[Tuple[Network, ...]] = LOOPBACK
    #: Whether a unix-socket peer is trusted.
    unix: bool = True
    #: ``X-Forwarded-For`` entries, from the right, written by proxies we trust; 0: none.
    hops: int = 1

    def trusts(self, peer: Optional[IP]) -> bool:
        if self.hops == 0:
            return False
        if peer is None:
            return self.unix
        return self.networks is None or any(peer in network for network in self.networks)


def trusted_proxies(value: Any) -> TrustedProxies:
    """``WS4REDIS_TRUSTED_PROXIES`` parsed: ``None`` (loopback and unix-socket peers, one hop),
    a count of hops (every peer is a proxy: a fixed chain), or a list of addresses or networks
    (``"unix"`` for a unix-socket peer) trusted for one hop.  Raises ``ValueError``."""
    if value is None:
        return TrustedProxies()
    if isinstance(value, TrustedProxies):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"a count of proxy hops must be 0 or more, not {value!r}")
        return TrustedProxies(networks=None, unix=True, hops=value)
    if isinstance(value, (list, tuple, set, frozenset)):
        networks = []
        for entry in value:
            if entry == "unix":
                continue
            try:
                networks.append(ipaddress.ip_network(str(entry), strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is neither an address, a network nor \"unix\"") from None
        return TrustedProxies(networks=tuple(networks), unix="unix" in value, hops=1)
    raise ValueError(f"give None, a count of hops or a list of addresses or networks, not {value!r}")


@dataclasses.dataclass(frozen=True)
class Client:
    """Who sent a request, as far as our trusted proxies tell."""

    #: The address to count, allow and log: the visitor's, or the peer's.
    address: str
    #: A trusted proxy said the visitor came over https.
    secure: bool = False
    #: Why a trusted peer's header was not used (for a log line), or ``None``.
    problem: Optional[str] = None


def _peer_ip(text: str) -> Optional[IP]:
    """The peer's address, or ``None`` for a unix-socket peer."""
    ip = _ip(text)
    return None if ip is None or ip.is_unspecified else ip


def _ip(text: str) -> Optional[IP]:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # A dual-stack server writes an IPv4 peer as ::ffff:a.b.c.d: the same client.
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped if mapped is not None else ip


def resolve(peer: str, forwarded_for: Optional[str], forwarded_proto: Optional[str], trusted: TrustedProxies) -> Client:
    """The client of a request whose peer is ``peer`` (``REMOTE_ADDR``), given its ``X-Forwarded-*`` headers."""
    peer_ip = _peer_ip(peer)
    address = str(peer_ip) if peer_ip is not None else peer
    if not trusted.trusts(peer_ip):
        return Client(address)
    hops = trusted.hops
    secure = False
    if forwarded_proto:
        protos = forwarded_proto.split(",")
        secure = len(protos) >= hops and protos[-hops].strip().lower() in ("https", "wss")
    if forwarded_for is None or not forwarded_for.strip():
        return Client(address, secure)  # a local client (a health check), not proxied
    entries = forwarded_for.split(",")
    if len(entries) < hops:
        return Client(address, secure, f"X-Forwarded-For has {len(entries)} addresses, fewer than the {hops} trusted hops")
    visitor = _ip(entries[-hops])
    if visitor is None:
        return Client(address, secure, "X-Forwarded-For is not an IP address at the trusted hop")
    return Client(str(visitor), secure)


def from_environ(environ: "WSGIEnvironment", trusted: TrustedProxies) -> Client:
    """The client of a WSGI request, worked out once per request (kept in the environ)."""
    client = environ.get(CLIENT_KEY)
    if isinstance(client, Client):
        return client
    client = resolve(str(environ.get("REMOTE_ADDR") or ""), environ.get("HTTP_X_FORWARDED_FOR"),
                     environ.get("HTTP_X_FORWARDED_PROTO"), trusted)
    if client.problem is not None:
        # %r: the path and the header are the client's text, escaped so no log line can be forged.
        logger.warning("%r: %s; counted as the proxy's address %r (X-Forwarded-For %r)", str(environ.get("PATH_INFO", ""))[:200],
                       client.problem, client.address, str(environ.get("HTTP_X_FORWARDED_FOR", ""))[:200])
    environ[CLIENT_KEY] = client
    return client
