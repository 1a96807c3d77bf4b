"""Closing every websocket of a process when it stops: one routine for every server.

Our runner (``SIGTERM``/``SIGINT``), the gunicorn hooks, uWSGI's exit hook and
the development server all call :func:`close_all_websockets`: every socket
gets a close frame with 1001 (going away), so clients reconnect at once, to
another worker or to the restarted one; then it waits until the sockets are
gone, at most ``wait`` seconds (their close timeout plus a tick, by default).
"""

from __future__ import annotations

import time

from .frames import CloseCode
from .hub import TICK, process_hubs

__all__ = ["close_all_websockets", "SHUTDOWN_WAIT"]

#: Seconds :func:`close_all_websockets` waits by default for the sockets to go.
SHUTDOWN_WAIT = 2.0 + TICK


def close_all_websockets(code: CloseCode = CloseCode.GOING_AWAY, reason: str = "server shutting down",
                         wait: float = SHUTDOWN_WAIT) -> int:
    """Close every websocket of this process with ``code``; how many there were.

    Must run in a greenlet that may block (not in a signal handler or a loop
    callback: spawn it there).  ``wait=0`` returns at once.
    """
    closing = [(hub, hub.close_all(code, reason)) for hub in process_hubs()]
    deadline = time.monotonic() + wait
    for hub, listeners in closing:
        # Only the sockets closed here are waited for: the server may still
        # accept new ones until it stops listening.
        hub.wait_detached(listeners, max(0.0, deadline - time.monotonic()))
    return sum(len(listeners) for _, listeners in closing)
