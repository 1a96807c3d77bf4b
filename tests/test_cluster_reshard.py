"""Redis Cluster resharding between live masters, end to end: three masters, the pywsgi server, real clients.

Sockets are subscribed to channels of every master while an HTTP publisher
(``RedisPublisher``, see :class:`helpers.Publisher`) sends a
round to all of them every ``helpers.PUBLISH_ROUND`` seconds; the slots of some channels of
one master are then moved, keys and all, to another live master, the way
``redis-cli --cluster reshard`` does it (``CLUSTER SETSLOT ... IMPORTING``
and ``MIGRATING``, ``MIGRATE`` of the slot's keys: the channel's kept
message, history stream and meta hash; ``SETSLOT ... NODE`` on the target,
the source, then every other master).  Every socket must stay open, every
accepted publication must reach its subscriber once (live, or by the gap
healing from the channel's history, which moved with the slot), and a new
socket on a moved channel must be accepted and recover from that history.
The figures are printed (``pytest -s``) and bounded.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import uuid

import pytest
from websockets.sync.client import connect

from helpers import ClusterTraffic, assert_new_socket_works, channels_by_master, recv, redis_cluster, stats

#: Channels per master (of ``channels_by_master``) whose slots are moved; the others stay.
MOVED = 3
#: Seconds each slot stays migrating after its keys moved.
PAUSE = 0.5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from redis_cluster(tmp_path_factory.mktemp("cluster-reshard"), masters=3)


@pytest.fixture(scope="module")
def server(cluster, django_setup, workdir):
    from helpers import start

    # A long health interval: the periodic reading of the slot map must not be what follows the move.
    server = start("pywsgi", cluster, workdir, WS4REDIS_TEST_HEARTBEAT="", WS4REDIS_TEST_REDIS_HEALTH_INTERVAL="30")
    yield server
    server.stop()


def move_slot(cluster, slot, source, target, pause=0.0):
    """Move ``slot`` with its keys from the master at port ``source`` to the one at ``target`` (as redis-cli does).

    ``pause``: seconds the slot stays migrating after its keys moved (the source answers ``ASK`` for them),
    as while redis-cli moves a slot with many keys.
    """
    import redis

    src, dst = redis.Redis(port=source), redis.Redis(port=target)
    src_id, dst_id = src.execute_command("CLUSTER", "MYID").decode(), dst.execute_command("CLUSTER", "MYID").decode()
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    moved = 0
    while True:
        keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
        if not keys:
            break
        src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
        moved += len(keys)
    time.sleep(pause)
    dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    for port in cluster.master_ports(target):
        if port not in (source, target):
            redis.Redis(port=port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    return moved


def recovery_position(server, name):
    """The history position of ``name``'s broadcast channel, from a socket asking for ``recover``."""
    with connect(f"{server.ws}/ws/{name}?subscribe-broadcast&recover", open_timeout=10) as ws:
        report = json.loads(recv(ws))
        assert report["type"] == "recovery", report
        return report["channels"]["broadcast"]


def recover_from(server, name, position):
    """A new socket on ``name`` recovering from ``position``: the report and the recovered messages."""
    value = urllib.parse.quote(json.dumps({"broadcast": position}))
    with connect(f"{server.ws}/ws/{name}?subscribe-broadcast&recover={value}", open_timeout=10) as ws:
        report = json.loads(recv(ws))
        return report, [json.loads(recv(ws))["data"] for _ in range(report.get("missed") or 0)]


def test_slots_moved_between_live_masters_keep_sockets_open_and_every_message_delivered(server, cluster):
    from redis.crc import key_slot

    tag = uuid.uuid4().hex[:6]
    by_master = channels_by_master(cluster, tag)
    names = [name for group in by_master.values() for name in group]
    source, target = sorted(by_master)[:2]
    moved = by_master[source][:MOVED]
    slots = sorted({key_slot(f"broadcast:{name}".encode()) for name in moved})

    async def run():
        traffic = ClusterTraffic(server, names)
        await traffic.start()
        try:
            await asyncio.sleep(1)  # steady state
            position = await asyncio.to_thread(recovery_position, server, moved[0])
            position_at = time.monotonic()
            healed = (await asyncio.to_thread(stats, server))["metrics"]["history_healed"]
            started = time.monotonic()
            keys = 0
            for slot in slots:
                moving = asyncio.ensure_future(asyncio.to_thread(move_slot, cluster, slot, source, target, PAUSE))
                await asyncio.sleep(PAUSE / 2)
                for name in moved:  # the sockets publish while the slot is migrating
                    await traffic.sockets[name].send(f"during {name} {slot}")
                keys += await moving
            done = time.monotonic()
            assert all(cluster.client().get_node_from_key(f"broadcast:{name}").port == target for name in moved)
            await traffic.wait_flowing(moved, done + 0.5, "messages on the moved channels")
            await asyncio.sleep(1)
        finally:
            await traffic.stop_publishing()
        await traffic.drain()
        healed = (await asyncio.to_thread(stats, server))["metrics"]["history_healed"] - healed
        print(f"\nresharding of {len(slots)} slots ({keys} keys) from {source} to {target}: {done - started:.2f} s; "
              f"{traffic.summary()}, {healed} delivered from history by the gap healing")
        silence, latest, back = traffic.check(started, done, moved)
        assert max(back[n] for n in moved) < 1.5, back
        assert max(silence[n] for n in names) < 2.0, silence
        assert max(latest[n] for n in names) < 2.0, latest
        await traffic.close()
        assert all(traffic.got(name, f"during {name} {slot}") for name in moved for slot in slots)
        return traffic.publisher, position, position_at

    publisher, position, position_at = asyncio.run(run())
    # A new socket on a moved channel is accepted, gets what is published, and recovers from the history that moved.
    assert_new_socket_works(server, moved[0])
    report, messages = recover_from(server, moved[0], position)
    sent = [message for name, message, at, ok in publisher.sent if ok and name == moved[0] and at > position_at]
    print(f"  recovery on {moved[0]} from before the move: {report.get('missed')} messages")
    assert report["recovered"] is True, report
    assert set(sent) <= set(messages) and len(messages) == len(set(messages)), (messages, sent)
