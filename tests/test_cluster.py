"""Redis Cluster with sharded pub/sub, end to end: three masters on loopback, the pywsgi server, real clients.

The cluster is made of redis-server processes (``cluster-enabled yes``)
joined by ``redis-cli --cluster create``; the server's ``WS4REDIS_CONNECTION``
is its ``redis+cluster://`` URL.  The test project keeps history on every
channel, so publications go through the history script (with ``SPUBLISH``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
import urllib.parse
import uuid

import pytest
from websockets.asyncio.client import connect as async_connect
from websockets.sync.client import connect

from conftest import Http
from helpers import recv, redis_cluster, start, stats

CHANNELS = 1000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from redis_cluster(tmp_path_factory.mktemp("cluster"), masters=3)


@pytest.fixture(scope="module")
def server(cluster, django_setup, workdir):
    server = start("pywsgi", cluster, workdir, WS4REDIS_TEST_HEARTBEAT="")
    yield server
    server.stop()


def masters_of(cluster, channels):
    client = cluster.client()
    return {channel: client.get_node_from_key(channel).port for channel in channels}


def publish_all(server, messages):
    """POST /publish (RedisPublisher) for each (facility, message), eight at a time."""
    def one(item):
        Http(server.http).publish(item[0], item[1], broadcast=True)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, messages))


def test_thousand_channels_over_three_masters_get_every_message_from_django_and_from_clients(server, cluster):
    tag = uuid.uuid4().hex[:6]
    names = [f"c{i}-{tag}" for i in range(CHANNELS)]
    masters = masters_of(cluster, [f"broadcast:{name}" for name in names])
    assert set(masters.values()) == set(cluster.ports)  # spread over all three
    received, subscribers = asyncio.run(_run(server, cluster, names))
    missing = {name: got for name, got in zip(names, received, strict=True) if got != [f"django {name}", f"client {name}"]}
    assert not missing, f"{len(missing)} channels missed messages, e.g. {list(missing.items())[:3]}"
    assert subscribers == [1, 1, 1]  # one subscription connection per master for all 1,000 sockets


def pubsub_clients(cluster):
    import redis

    return [len(redis.Redis(port=port).client_list(_type="pubsub")) for port in cluster.ports]


async def _run(server, cluster, names):
    sockets = []
    for name in names:
        url = f"{server.ws}/ws/{name}?subscribe-broadcast&publish-broadcast&echo"
        sockets.append(await async_connect(url, open_timeout=20, max_queue=None))
    received = [[] for _ in sockets]

    async def read(i, ws):
        while len(received[i]) < 2:
            received[i].append(await ws.recv())

    readers = asyncio.gather(*(read(i, ws) for i, ws in enumerate(sockets)))
    try:
        await asyncio.to_thread(publish_all, server, [(name, f"django {name}") for name in names])
        for name, ws in zip(names, sockets, strict=True):
            await ws.send(f"client {name}")
        await asyncio.wait_for(readers, timeout=60)
    except TimeoutError:
        pass
    finally:
        subscribers = await asyncio.to_thread(pubsub_clients, cluster)
        for ws in sockets:
            await ws.close()
    return received, subscribers


def test_kept_messages_and_history_recovery_work_on_every_master(server, cluster):
    tag = uuid.uuid4().hex[:6]
    names = [f"k{i}-{tag}" for i in range(30)]
    assert set(masters_of(cluster, [f"broadcast:{name}" for name in names]).values()) == set(cluster.ports)
    publish_all(server, [(name, f"kept {name}") for name in names])
    positions = {}
    for name in names:
        with connect(f"{server.ws}/ws/{name}?subscribe-broadcast", open_timeout=5) as plain:
            assert recv(plain) == f"kept {name}"
        with connect(f"{server.ws}/ws/{name}?subscribe-broadcast&recover", open_timeout=5) as opted:
            report = json.loads(recv(opted))
            assert report["type"] == "recovery" and report["channels"]["broadcast"]["offset"] == 1
            positions[name] = report["channels"]["broadcast"]
            assert json.loads(recv(opted))["data"] == f"kept {name}"
    publish_all(server, [(name, f"missed {name} {n}") for name in names for n in range(3)])
    for name in names:
        value = urllib.parse.quote(json.dumps({"broadcast": positions[name]}))
        with connect(f"{server.ws}/ws/{name}?subscribe-broadcast&recover={value}", open_timeout=5) as ws:
            report = json.loads(recv(ws))
            assert report["recovered"] is True and report["missed"] == 3, (name, report)
            assert sorted(json.loads(recv(ws))["data"] for _ in range(3)) == [f"missed {name} {n}" for n in range(3)]


def test_killed_subscription_on_one_master_counts_what_that_master_published_meanwhile(server, cluster):
    """``CLIENT KILL TYPE pubsub`` on one master under a stream of SPUBLISH to every master: the count of
    messages possibly missed grows by at least what that master's subscribers missed and by at most its
    publications since a second or so before the kill; the other masters' (twenty times as many) are not counted."""
    import redis

    tag = uuid.uuid4().hex[:6]
    name_of = {}
    i = 0
    while len(name_of) < 3:
        name = f"m{i}-{tag}"
        name_of.setdefault(masters_of(cluster, [f"broadcast:{name}"])[f"broadcast:{name}"], name)
        i += 1
    victim = sorted(name_of)[0]
    sockets = {port: connect(f"{server.ws}/ws/{name}?subscribe-broadcast", open_timeout=5, max_queue=None)
               for port, name in name_of.items()}
    sent = {port: [] for port in name_of}  # time.monotonic() of each publication, its payload is its index
    done = threading.Event()

    def publish():
        pipes = {port: redis.Redis(port=port).pipeline(transaction=False) for port in name_of}
        while not done.is_set():
            for port, pipe in pipes.items():
                for _ in range(1 if port == victim else OTHERS_RATE):
                    pipe.execute_command("SPUBLISH", f"broadcast:{name_of[port]}", str(len(sent[port])))
                    sent[port].append(time.monotonic())
                pipe.execute()
            done.wait(0.002)  # a few hundred rounds a second: enough to lose some, modest on a shared machine

    before = stats(server)["metrics"]
    thread = threading.Thread(target=publish)
    thread.start()
    try:
        time.sleep(3.0)  # the hub reads every master's count once a second
        killed_at = time.monotonic()
        redis.Redis(port=victim).client_kill_filter(_type="pubsub")
        time.sleep(1.0)
    finally:
        done.set()
        thread.join()
    received = {}
    for port, ws in sockets.items():
        received[port] = []
        try:
            while True:
                received[port].append(int(recv(ws, 1)))
        except TimeoutError:
            pass
        ws.close()
    after = stats(server)["metrics"]
    counted = after["messages_possibly_missed"] - before["messages_possibly_missed"]
    missed = len(sent[victim]) - len(received[victim])
    bound = sum(at >= killed_at - WINDOW for at in sent[victim])
    others = sum(len(sent[port]) for port in name_of if port != victim)
    print(f"\nCLIENT KILL TYPE pubsub on {victim}: {len(sent[victim])} published there ({bound} since {WINDOW} s before the kill), "
          f"{missed} missed, {counted} counted as possibly missed; {others} published to the other masters")
    assert received[victim] and received[victim][-1] == len(sent[victim]) - 1, "nothing published after the resubscription arrived"
    for port in name_of:
        if port != victim:
            assert received[port] == list(range(len(sent[port]))), f"master {port}'s subscribers missed messages"
    assert missed > 0, "the kill lost nothing: the test proves nothing"
    assert after["subscription_gaps"] - before["subscription_gaps"] == 1
    assert after["redis_reconnects"] - before["redis_reconnects"] == 1
    assert missed <= counted <= bound, (missed, counted, bound)


#: Publications to each other master per publication to the killed one's channel.
OTHERS_RATE = 10
#: Seconds before the loss that the last reading of a master's count may date from (one a second; a busy machine delays it).
WINDOW = 2.0


def test_cluster_configuration_names_the_startup_nodes_and_only_database_0():
    from ws4redis_mw.connection import cluster_config, is_cluster, node_config

    url = "redis+cluster://:s3@10.0.0.1:7000,10.0.0.2/"
    assert is_cluster(url) and is_cluster({"cluster_nodes": []}) and not is_cluster("redis://10.0.0.1/0")
    assert cluster_config(url) == ([("10.0.0.1", 7000), ("10.0.0.2", 6379)], {"password": "s3"})
    assert node_config({"cluster_nodes": [("a", 1)], "password": None}, "b", 2) == {"password": None, "host": "b", "port": 2}
    with pytest.raises(ValueError):
        cluster_config("redis+cluster://10.0.0.1:7000/1")


def test_logout_and_disconnect_orders_reach_the_sockets_under_a_cluster(server, cluster, django_setup):
    from django.test import override_settings
    from test_control import closed_with

    import ws4redis_mw

    username = "u" + uuid.uuid4().hex[:10]
    http = Http(server.http)
    http.login(username)
    path = f"{server.ws}/ws/f{uuid.uuid4().hex[:8]}?subscribe-user"
    first = connect(path, additional_headers={"Cookie": http.cookie_header()})
    with override_settings(WS4REDIS_CONNECTION=cluster.url):  # this process publishes the order to the cluster
        assert ws4redis_mw.disconnect(user=username, code=4003) >= 1
    assert closed_with(first, timeout=1.0) == 4003
    second = connect(path, additional_headers={"Cookie": http.cookie_header()})
    assert http.request("/logout", b"")[0] == 200
    assert closed_with(second, timeout=1.0) == 4001
