"""Redis Cluster failover, end to end: three masters with a replica each, the pywsgi server, real clients.

Sockets are subscribed to channels of every master while an HTTP publisher
(``RedisPublisher``) sends a round of publications to all of them every
:data:`helpers.PUBLISH_ROUND` seconds; one master is then failed over to its replica, by
hand (``CLUSTER FAILOVER``) or by killing it.  Every socket must stay open,
every accepted publication must reach its subscriber once (live, or by the
hub's gap healing from the channel's history: the test project keeps
history on every channel), and new sockets must be accepted again.  The
figures (longest silence and latest delivery per socket) are printed
(``pytest -s``) and bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from helpers import ClusterTraffic, assert_new_socket_works, channels_by_master, redis_cluster, stats

#: Milliseconds of silence before the cluster takes a master for failed.
NODE_TIMEOUT = 2000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from redis_cluster(tmp_path_factory.mktemp("cluster-failover"), masters=3, replicas=1, node_timeout=NODE_TIMEOUT)


@pytest.fixture(scope="module")
def server(cluster, django_setup, workdir):
    from helpers import start

    # A long health interval: the periodic reading of the slot map must not be what follows a failover.
    server = start("pywsgi", cluster, workdir, WS4REDIS_TEST_HEARTBEAT="", WS4REDIS_TEST_REDIS_HEALTH_INTERVAL="30")
    yield server
    server.stop()


async def run_failover(server, cluster, fail, *, moved_silence, other_silence, other_latency, back_after, publish_during=False):
    """Sockets on every master, the publisher running, ``fail(master)`` on one; every figure checked against its bound (s).

    ``moved_silence``/``other_silence``: longest time without a message on a
    socket of the failed master's channels / of the others' (None: not
    bounded); ``other_latency``: latest delivery on the others';
    ``back_after``: first delivery on the moved channels of a publication
    sent after the promotion.  ``publish_during``: one second after the
    failure began, the sockets of the other masters' channels publish, and
    new sockets are tried on both.
    """
    tag = uuid.uuid4().hex[:6]
    by_master = channels_by_master(cluster, tag)
    names = [name for group in by_master.values() for name in group]
    victim = sorted(by_master)[0]
    moved = set(by_master[victim])
    others = set(names) - moved
    traffic = ClusterTraffic(server, names)
    await traffic.start()
    try:
        await asyncio.sleep(1)  # steady state: the hub's first readings of the slot map are over
        healed = (await asyncio.to_thread(stats, server))["metrics"]["history_healed"]
        failed_at = time.monotonic()
        failing = asyncio.ensure_future(asyncio.to_thread(fail, victim))
        if publish_during:
            await asyncio.sleep(1)
            assert not failing.done(), "the failover was over before the clients published"
            for name in others:
                await traffic.sockets[name].send(f"during {name}")
            # A new socket is accepted on a live master's channel, refused on the dead one's.
            await asyncio.to_thread(assert_new_socket_works, server, sorted(others)[0])
            with pytest.raises((InvalidStatus, ConnectionClosed)):
                await asyncio.to_thread(assert_new_socket_works, server, sorted(moved)[0])
            assert not failing.done(), "the failover was over before the new sockets were tried"
        promoted = await failing
        promoted_at = time.monotonic()
        # Messages flow again on the moved slots: something published after the promotion arrived.
        await traffic.wait_flowing(moved, promoted_at + 0.5, "messages on the promoted master's channels")
        await asyncio.sleep(1)
    finally:
        await traffic.stop_publishing()
    await traffic.drain()
    if publish_during:
        assert all(traffic.got(name, f"during {name}") for name in others), "publications during"
    healed = (await asyncio.to_thread(stats, server))["metrics"]["history_healed"] - healed
    print(f"\nfailover of {victim} to {promoted}: promoted after {promoted_at - failed_at:.2f} s; "
          f"{traffic.summary()}, {healed} delivered from history by the gap healing")
    silence, latest, back = traffic.check(failed_at, promoted_at, moved)
    assert moved_silence is None or max(silence[n] for n in moved) < moved_silence, silence
    assert other_silence is None or max(silence[n] for n in others) < other_silence, silence
    assert max(latest[n] for n in others) < other_latency, latest
    assert max(back[n] for n in moved) < back_after, back
    await traffic.close()
    return promoted, by_master[victim]


def test_manual_failover_keeps_sockets_open_and_every_message_delivered(server, cluster):
    import redis

    def fail(master):
        replica = cluster.replica_of(master)
        redis.Redis(port=replica).execute_command("CLUSTER", "FAILOVER")
        return wait_promoted(cluster, replica, master, 15)

    promoted, names = asyncio.run(run_failover(server, cluster, fail, moved_silence=1.0, other_silence=1.0, other_latency=1.0,
                                                    back_after=1.0))
    assert_new_socket_works(server, names[0])


def test_killed_master_is_replaced_and_messages_on_its_slots_flow_again(server, cluster):
    def fail(master):
        replica = cluster.replica_of(master)
        node = cluster.node(master)
        os.kill(node.proc.pid, signal.SIGKILL)
        node.proc.wait(5)
        return wait_promoted(cluster, replica, master, 30)

    promoted, names = asyncio.run(run_failover(server, cluster, fail, moved_silence=None, other_silence=None, other_latency=1.0,
                                                    back_after=1.5, publish_during=True))
    assert_new_socket_works(server, names[0])


def wait_promoted(cluster, replica, master, timeout):
    """Wait until ``replica`` serves slots and ``master`` none; the replica's port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            masters = cluster.master_ports(replica)
        except Exception:
            masters = []
        if replica in masters and master not in masters:
            return replica
        time.sleep(0.05)
    raise AssertionError(f"{replica} did not replace {master} within {timeout} s")
