"""WS4REDIS_CONNECTION: URLs and dicts, Redis Sentinel against real sentinels and a real failover."""

from __future__ import annotations

import time

import pytest
from websockets.sync.client import connect

from ws4redis_mw.connection import is_sentinel, sentinel_config

from conftest import Http, require
from helpers import start
from servers import SentinelSet, redis_server_binary


def test_sentinel_url_names_sentinels_service_db_and_passwords():
    sentinels, service, kwargs, sentinel_kwargs = sentinel_config(
        "redis+sentinel://:s%40cret@10.0.0.1:26380,10.0.0.2,[::1]:26381/mymaster/2?sentinel_password=sp")
    assert sentinels == [("10.0.0.1", 26380), ("10.0.0.2", 26379), ("::1", 26381)]
    assert service == "mymaster" and kwargs == {"password": "s@cret", "db": 2} and sentinel_kwargs == {"password": "sp"}


def test_sentinel_dict_names_sentinels_and_service():
    config = {"sentinels": [("h", 26379)], "service_name": "m", "db": 1, "password": None, "sentinel_kwargs": {"password": "x"}}
    assert is_sentinel(config) and not is_sentinel({"host": "h"}) and not is_sentinel("redis://h")
    assert sentinel_config(config) == ([("h", 26379)], "m", {"db": 1}, {"password": "x"})


def test_sentinel_url_takes_a_username_and_db_from_the_query():
    sentinels, service, kwargs, sentinel_kwargs = sentinel_config(
        "redis+sentinel://app:pw@h1:1,h2:2/main?db=4&sentinel_username=s")
    assert sentinels == [("h1", 1), ("h2", 2)] and service == "main"
    assert kwargs == {"username": "app", "password": "pw", "db": 4} and sentinel_kwargs == {"username": "s"}


def test_sentinel_url_without_a_service_name_is_refused():
    with pytest.raises(ValueError, match="without a service name"):
        sentinel_config("redis+sentinel://h1:26379/")


def test_cluster_forms_refuse_a_database_other_than_0():
    from ws4redis_mw.connection import cluster_config

    assert cluster_config("redis+cluster://user:pw@h:7000/0") == ([("h", 7000)], {"username": "user", "password": "pw"})
    with pytest.raises(ValueError, match="only database 0"):
        cluster_config({"cluster_nodes": [("h", 7000)], "db": 2})


@pytest.fixture
def sentinel_set(tmp_path):
    require(redis_server_binary() is not None, "redis-server is not installed (apt-get install redis-server)")
    stack = SentinelSet(tmp_path)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def test_sockets_stay_open_through_a_sentinel_failover_and_receive_what_is_published_after_it(sentinel_set, django_setup, workdir):
    server = start("pywsgi", sentinel_set, workdir, WS4REDIS_TEST_HEARTBEAT="")
    try:
        listener = connect(f"{server.ws}/ws/fo?subscribe-broadcast", open_timeout=5)
        talker = connect(f"{server.ws}/ws/fo?publish-broadcast", open_timeout=5)
        http = Http(server.http)
        http.publish("fo", "before", broadcast=True)  # RedisPublisher through redis-py's Sentinel client
        assert listener.recv(timeout=5) == "before"

        started = time.monotonic()
        sentinel_set.failover()
        print(f"\nfailover done after {time.monotonic() - started:.1f} s")
        deadline = time.monotonic() + 20
        got = None
        while got is None and time.monotonic() < deadline:
            status, _, _ = http.post_json("/publish", {"facility": "fo", "message": "after", "broadcast": True})
            try:
                got = listener.recv(timeout=0.5) if status == 200 else None
            except TimeoutError:
                pass
        assert got == "after"
        print(f"first message after the failover delivered {time.monotonic() - started:.1f} s after it began")
        new_master = sentinel_set.replica.client()
        while b"broadcast:fo" not in new_master.pubsub_channels():  # the hub follows the new master
            assert time.monotonic() - started < 10, "the hub is still subscribed to the old master"
            time.sleep(0.1)
        print(f"hub subscribed on the new master {time.monotonic() - started:.1f} s after the failover began")
        # The publisher asks the sentinels at most once a second (MASTER_CHECK_INTERVAL): until it has, a
        # publish may still go to the old master, which Sentinel has not reconfigured yet.
        time.sleep(1.1)
        http.publish("fo", "on the new master", broadcast=True)
        while (got := listener.recv(timeout=5)) == "after":  # a retry of "after" may arrive twice
            pass
        assert got == "on the new master"
        talker.send("from a socket after the failover")  # the hub's command connection too
        assert listener.recv(timeout=5) == "from a socket after the failover"
        listener.close()
        talker.close()
    finally:
        server.stop()
