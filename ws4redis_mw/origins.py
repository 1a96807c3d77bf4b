"""Which browser pages may open a websocket: the ``Origin`` check, with no I/O.

A browser sends the cookies of the site a websocket goes to, whichever page
opens it; only the ``Origin`` header says which page that is.  The rules:

* An ``Origin`` is allowed when its scheme, host and port are the request's
  own (the ``Host`` header, and ``https`` for a secure request), default ports
  implied, as Django's CSRF origin check does.  A page on another port or
  scheme of the same host is another origin.
* Or when it matches an entry of ``WS4REDIS_ALLOWED_ORIGINS`` or of Django's
  ``CSRF_TRUSTED_ORIGINS``: an exact origin (``https://example.com``,
  ``http://localhost:8000``), a wildcard for subdomains
  (``https://*.example.com``: any subdomain, same scheme and port), or ``"*"``
  (any origin: the check is off).  ``WS4REDIS_ALLOWED_ORIGINS`` may instead be
  a callable ``f(origin) -> bool`` (or its dotted path).
* ``ALLOWED_HOSTS`` plays no part: ``["*"]`` there does not open this check.
* A request without ``Origin`` is not from a browser page and is allowed
  (browsers always send it on websocket handshakes); an ``Origin`` that is not
  ``scheme://host[:port]`` (``null`` included) is refused.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit

__all__ = ["Origin", "parse_origin", "parse_host", "OriginPolicy"]

_HOST = re.compile(r"[a-z0-9.-]+|[0-9a-f:.]+")  # a name or IPv4, or IPv6 (brackets taken off)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclasses.dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int


def parse_origin(value: str) -> Origin:
    """``scheme://host[:port]``, normalised; ``ValueError`` for anything else."""
    parts = urlsplit(value.strip())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(f"not an origin: {value!r}")
    port = parts.port or _DEFAULT_PORTS[parts.scheme]  # .port raises ValueError for a bad port
    host = parts.hostname.lower()
    if not _HOST.fullmatch(host):
        raise ValueError(f"not a host name or address: {host!r}")
    return Origin(parts.scheme, host, port)


def parse_host(host: str, secure: bool) -> Optional[Origin]:
    """The origin a request with ``Host: host`` belongs to, or ``None`` if the header is unusable."""
    scheme = "https" if secure else "http"
    try:
        return parse_origin(f"{scheme}://{host}")
    except ValueError:
        return None


class OriginPolicy:
    """The rules above, compiled once from the settings."""

    def __init__(self, allowed: object = None, trusted: Iterable[str] = ()):
        self._any = False
        self._check: Optional[Callable[[str], bool]] = None
        exact, wildcards = set(), []
        entries: List[str] = list(trusted)
        if callable(allowed):
            self._check = allowed
        elif allowed is not None:
            entries += list(allowed)  # type: ignore[call-overload]
        for entry in entries:
            if entry == "*":
                self._any = True
            elif "://*." in entry:
                scheme, _, rest = entry.partition("://*.")
                origin = parse_origin(f"{scheme}://{rest}")
                wildcards.append(origin)
            else:
                exact.add(parse_origin(entry))
        self._exact = frozenset(exact)
        self._wildcards: Tuple[Origin, ...] = tuple(wildcards)

    def allows(self, value: str, own: Optional[Origin]) -> bool:
        """Whether a page of origin ``value`` may open a websocket on a server whose origin is ``own``."""
        if self._any:
            return True
        try:
            origin = parse_origin(value)
        except ValueError:
            return False
        if origin == own or origin in self._exact:
            return True
        for pattern in self._wildcards:
            if (origin.scheme, origin.port) == (pattern.scheme, pattern.port) and origin.host.endswith("." + pattern.host):
                return True
        return self._check is not None and bool(self._check(value))
