"""The hub's command connection: a connection Redis closed while idle costs nothing visible."""

from __future__ import annotations

import time

from websockets.sync.client import connect

from conftest import Http
from helpers import start, stats


def test_publish_after_redis_closed_the_idle_command_connection_is_delivered(own_redis, django_setup, workdir):
    """Redis' ``timeout 2``, then 5 s of silence: no 1013, no 503, every message delivered."""
    own_redis.client().config_set("timeout", 2)
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="")
    try:
        listener = connect(f"{server.ws}/ws/idle?subscribe-broadcast", open_timeout=5)
        talker = connect(f"{server.ws}/ws/idle?publish-broadcast", open_timeout=5)
        http = Http(server.http)
        talker.send("first")
        assert listener.recv(timeout=5) == "first"
        http.publish("idle", "from django", broadcast=True)  # the publisher's pool has a connection now too
        assert listener.recv(timeout=5) == "from django"
        before = len(own_redis.client().client_list())
        time.sleep(5)  # Redis closes every idle non-subscriber connection after 2 s
        assert len(own_redis.client().client_list()) < before, "Redis' timeout closed nothing: the test proves nothing"

        talker.send("after the silence")
        assert listener.recv(timeout=5) == "after the silence"
        http.publish("idle", "django after the silence", broadcast=True)
        assert listener.recv(timeout=5) == "django after the silence"
        late = connect(f"{server.ws}/ws/idle?subscribe-broadcast", open_timeout=5)  # not 503
        assert late.recv(timeout=5) == "django after the silence"  # the kept message, read with MGET
        for ws in (listener, talker, late):
            ws.close()
        assert stats(server)["metrics"]["handshakes_refused"] == {}
        assert "1013" not in server.log_text()
    finally:
        server.stop()
