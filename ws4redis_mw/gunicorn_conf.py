"""gunicorn hooks: close websockets with 1001 when a worker is told to stop; a handshake timeout.

    gunicorn -c python:ws4redis_mw.gunicorn_conf -k gevent_pywsgi --no-control-socket mysite.wsgi:application

Without them a stopping gevent worker keeps its websockets open until
``--graceful-timeout`` runs out and then drops them (clients see 1006).  With
them, SIGTERM, SIGINT and SIGQUIT first send every local socket a close frame
with 1001 (going away), so clients reconnect at once, to another worker or to
the restarted one.  The worker's pywsgi handler (``gevent_pywsgi``'s or
gevent-websocket's) also gets ``WS4REDIS_HANDSHAKE_TIMEOUT``: connections that
send no request are closed (:mod:`ws4redis_mw.handlers`).  To combine with a
config file of your own, import
``post_worker_init`` from here into it.

gunicorn imports this module in the master, before a gevent worker
monkey-patches the standard library: so it imports nothing at module level
but the standard library's ``signal`` (gevent, redis-py and our hub, which
import ``ssl``, are imported in the hook, in the patched worker).  Importing
them here made gevent print a ``MonkeyPatchWarning`` at every worker start.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any, Callable, Optional

__all__ = ["post_worker_init"]


def post_worker_init(worker: Any) -> None:
    # gunicorn registered its handlers before this hook runs; wrap them.
    for signum, name in ((signal.SIGTERM, "handle_exit"), (signal.SIGINT, "handle_quit"), (signal.SIGQUIT, "handle_quit")):
        signal.signal(signum, _closing_first(getattr(worker, name)))
    # The worker makes its server, with this handler class, after this hook.
    handler = getattr(worker, "wsgi_handler", None)
    if handler is not None:
        from gevent import pywsgi

        from .handlers import handshake_timeout, with_timeout

        if isinstance(handler, type) and issubclass(handler, pywsgi.WSGIHandler):
            worker.wsgi_handler = with_timeout(handler, handshake_timeout())


def _closing_first(handler: Callable[[int, Optional[FrameType]], Any]) -> Callable[[int, Optional[FrameType]], None]:
    import gevent

    from .shutdown import close_all_websockets

    def handle(signum: int, frame: Optional[FrameType]) -> None:
        # Run in the gevent loop, not inside the signal handler.
        gevent.get_hub().loop.run_callback(gevent.spawn, close_all_websockets)
        handler(signum, frame)

    return handle
