"""A small production runner: gevent's pywsgi serving a WSGI application.

    python -m ws4redis_mw.serve mysite.wsgi:application --bind 127.0.0.1:8000
    python -m ws4redis_mw.serve mysite.wsgi:application --bind unix:/run/site.sock

It monkey-patches the standard library first (so database drivers written in
Python cooperate with gevent), serves with pywsgi's plain handler (the
middleware does the websocket handshake itself, so refusals are proper HTTP
answers), and on SIGTERM or SIGINT closes every websocket with 1001 before
it stops.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from typing import TYPE_CHECKING, List, Optional, Tuple, Union  # noqa: E402

import gevent  # noqa: E402
from gevent import pywsgi  # noqa: E402

from .handlers import handshake_timeout, with_timeout  # noqa: E402
from .shutdown import close_all_websockets  # noqa: E402

if TYPE_CHECKING:
    import gevent.socket
    from _typeshed.wsgi import WSGIApplication

logger = logging.getLogger("ws4redis_mw.serve")

#: Seconds open requests get to finish after a stop signal.
STOP_TIMEOUT = 5.0


def load_app(spec: str) -> WSGIApplication:
    """``module:attribute`` (attribute defaults to ``application``)."""
    module_name, _, attribute = spec.partition(":")
    sys.path.insert(0, os.getcwd())
    application: WSGIApplication = getattr(importlib.import_module(module_name), attribute or "application")
    return application


def listener(bind: str) -> Union[gevent.socket.socket, Tuple[str, int]]:
    if bind.startswith("unix:"):
        from gevent import socket

        path = bind[len("unix:"):]
        if os.path.exists(path):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(1024)
        return sock
    host, _, port = bind.rpartition(":")
    return (host or "127.0.0.1", int(port))


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ws4redis_mw.serve", description=__doc__.splitlines()[0])
    parser.add_argument("app", help="the WSGI application, as module:attribute")
    parser.add_argument("--bind", default="127.0.0.1:8000", help="host:port or unix:/path (default %(default)s)")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    app = load_app(args.app)
    handler = with_timeout(pywsgi.WSGIHandler, handshake_timeout())
    server = pywsgi.WSGIServer(listener(args.bind), app, log=None, error_log=logging.getLogger("ws4redis_mw.serve.error"),
                               handler_class=handler)

    def stop() -> None:
        # gevent runs this in a greenlet of its own, which may wait.
        logger.info("stopping: closing websockets with 1001")
        close_all_websockets()
        server.stop(STOP_TIMEOUT)

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    logger.info("serving %s on %s", args.app, args.bind)
    server.serve_forever()


if __name__ == "__main__":
    main()
