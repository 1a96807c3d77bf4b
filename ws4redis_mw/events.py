"""One structured log line and one count for each refusal and each server-side close.

Design rules of this module:

* Every refused handshake (:func:`refused`) and every close the server starts
  (:func:`closed`) is logged by the ``ws4redis_mw`` logger with the same
  ``extra=`` fields, so that a JSON formatter gets them as keys:
  ``ws_event`` (``"refused"`` or ``"closed"``), ``ws_id`` (the socket's number
  in this process), ``ws_path``, ``ws_user`` (username, ``None`` if
  anonymous or not known yet), ``ws_addr`` (the visitor's address, read
  through trusted proxies by :mod:`ws4redis_mw.clientaddr`), ``ws_status`` (HTTP status, refusals) or
  ``ws_code`` (close code), and ``ws_reason``.
* Values a client chose (the path, and reasons that quote it) are escaped as
  :func:`repr` escapes them (control characters, newlines and backslashes
  become ``\\n``, ``\\x1b``, ...), in the message and in the fields, so no log
  line can be forged or broken by a client, whatever the formatter.
* Refusals are counted by status and closes by code in
  :data:`ws4redis_mw.counters.METRICS`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any, Dict, Optional

from .clientaddr import CLIENT_KEY, Client
from .counters import METRICS

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["SocketInfo", "refused", "closed", "escape", "ID_KEY", "USER_KEY", "info_from"]

logger = logging.getLogger("ws4redis_mw")

#: WSGI environ keys under which the middleware leaves a socket's number and user for this module.
ID_KEY, USER_KEY = "ws4redis_mw.socket_id", "ws4redis_mw.user"


def escape(value: Optional[str]) -> Optional[str]:
    """``value`` with what :func:`repr` escapes escaped, without the quotes."""
    return None if value is None else repr(str(value))[1:-1]


@dataclasses.dataclass(frozen=True)
class SocketInfo:
    """Who a socket is, for its log lines: number, path and user, already escaped."""

    id: int
    path: str
    user: Optional[str] = None
    address: Optional[str] = None

    def fields(self) -> Dict[str, Any]:
        return {"ws_id": self.id, "ws_path": self.path, "ws_user": self.user, "ws_addr": self.address}


def info_from(environ: "WSGIEnvironment") -> SocketInfo:
    user = environ.get(USER_KEY)
    client = environ.get(CLIENT_KEY)
    return SocketInfo(int(environ.get(ID_KEY, 0)), escape(environ.get("PATH_INFO", "")) or "",
                      escape(user) if user else None, escape(client.address) if isinstance(client, Client) else None)


def refused(environ: "WSGIEnvironment", status: int, reason: str, detail: str = "") -> None:
    """``reason`` is what the client was told; ``detail`` what it sent that made us refuse (logged only, escaped)."""
    info = info_from(environ)
    reason = escape(reason) or ""
    detail = escape(detail) or ""
    METRICS.refused(int(status))
    logger.warning("ws#%d '%s'%s: refused: %d %s%s", info.id, info.path, f" from {info.address}" if info.address else "",
                   status, reason, f" ({detail})" if detail else "",
                   extra={"ws_event": "refused", **info.fields(), "ws_status": int(status), "ws_reason": reason,
                          "ws_detail": detail})


def closed(info: Optional[SocketInfo], code: int, reason: str, name: str = "") -> None:
    """A close the server starts (every code; 1000 and 1001 at level DEBUG, the rest at INFO)."""
    METRICS.closed(int(code))
    reason = escape(reason) or ""
    level = logging.DEBUG if code in (1000, 1001) else logging.INFO
    if not logger.isEnabledFor(level):
        return
    fields = info.fields() if info is not None else {"ws_id": None, "ws_path": None, "ws_user": None, "ws_addr": None}
    logger.log(level, "%s: closing with %d: %s", name or f"ws#{fields['ws_id']}", code, reason,
               extra={"ws_event": "closed", **fields, "ws_code": int(code), "ws_reason": reason})
