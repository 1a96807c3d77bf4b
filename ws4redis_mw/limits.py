"""How many websockets one client address and one user may hold open, per worker process: no I/O.

``WS4REDIS_MAX_SOCKETS_PER_IP`` and ``WS4REDIS_MAX_SOCKETS_PER_USER`` bound
what a single client can take of a worker (descriptors, memory, Redis
subscriptions); a handshake past either gets 429 before the upgrade.  The
counts are per process: with N workers a client may hold up to N times as
many.  The address is ``REMOTE_ADDR``: behind a proxy that is the proxy's,
unless the server is told the client's (uWSGI and nginx pass it on a
``uwsgi_pass``; with ``proxy_pass``, set ``REMOTE_ADDR`` from a trusted header
in the server or raise the limit).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

__all__ = ["SocketCounts"]

Key = Tuple[str, Optional[str]]  # (address, username or None)


class SocketCounts:
    def __init__(self, max_per_ip: Optional[int], max_per_user: Optional[int]):
        self.max_per_ip = max_per_ip
        self.max_per_user = max_per_user
        self._per_ip: Dict[str, int] = {}
        self._per_user: Dict[str, int] = {}

    def acquire(self, address: str, user: Optional[str]) -> Optional[str]:
        """Count one more socket; or, if that is one too many, why not (and nothing is counted)."""
        if self.max_per_ip is not None and self._per_ip.get(address, 0) >= self.max_per_ip:
            return f"too many websockets from this address (at most {self.max_per_ip})"
        if user is not None and self.max_per_user is not None and self._per_user.get(user, 0) >= self.max_per_user:
            return f"too many websockets for this user (at most {self.max_per_user})"
        self._per_ip[address] = self._per_ip.get(address, 0) + 1
        if user is not None:
            self._per_user[user] = self._per_user.get(user, 0) + 1
        return None

    def release(self, address: str, user: Optional[str]) -> None:
        _decrement(self._per_ip, address)
        if user is not None:
            _decrement(self._per_user, user)

    def open_from(self, address: str) -> int:
        return self._per_ip.get(address, 0)


def _decrement(counts: Dict[str, int], key: str) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
