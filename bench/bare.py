"""The reference: the simplest correct gevent-websocket + Redis bridge, about 40 lines.

    python bench/bare.py --port 8000 --redis redis://127.0.0.1:6379/0 [--workers 2]

One pattern subscription per process (``broadcast:*``); its listener greenlet
writes each message to each socket of that channel.  A socket subscribes to
``broadcast:<facility>`` for ``/ws/<facility>``, and what a client sends is
PUBLISHed there (so a client on its own facility gets its own message back).
No flags, no sessions, no heartbeat, no limits: the floor, not a product.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402

import gevent  # noqa: E402
import redis  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402

sockets = {}  # channel -> set of websockets


def listen(url):
    pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("broadcast:*")
    for message in pubsub.listen():
        for ws in list(sockets.get(message["channel"], ())):
            try:
                ws.send(message["data"].decode())
            except Exception:
                sockets[message["channel"]].discard(ws)


def app(environ, start_response, publisher):
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("400 Bad Request", [])
        return [b""]
    channel = ("broadcast:" + environ["PATH_INFO"].rsplit("/", 1)[-1]).encode()
    sockets.setdefault(channel, set()).add(ws)
    try:
        while (message := ws.receive()) is not None:
            publisher.publish(channel, message)
    finally:
        sockets[channel].discard(ws)
    return []


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", args.port), backlog=1024)
    for _ in range(args.workers - 1):  # pre-fork: every worker accepts on the same socket
        if os.fork() == 0:
            break
    publisher = redis.Redis.from_url(args.redis)
    gevent.spawn(listen, args.redis)
    WSGIServer(listener, lambda e, s: app(e, s, publisher=publisher), handler_class=WebSocketHandler, log=None).serve_forever()
