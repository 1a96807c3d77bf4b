"""The hub's subscription connection against a Redis that hangs, starts late or drops it."""

from __future__ import annotations

import os
import signal
import threading
import time

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from conftest import Http
from helpers import start, stats
from servers import RedisServer, wait_for_port


def handshake(server, path="/ws/probe?subscribe-broadcast"):
    """(accepted?, seconds the handshake took)."""
    started = time.monotonic()
    try:
        ws = connect(server.ws + path, open_timeout=10)
    except InvalidStatus as exc:
        assert exc.response.status_code == 503
        return False, time.monotonic() - started
    ws.close()
    return True, time.monotonic() - started


def test_hung_redis_is_noticed_within_five_seconds_and_handshakes_are_then_refused_at_once(own_redis, django_setup, workdir):
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="")
    try:
        ws = connect(f"{server.ws}/ws/hang?subscribe-broadcast", open_timeout=5)
        own_redis.proc.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            noticed = None
            while time.monotonic() - stopped < 10:
                accepted, took = handshake(server)
                assert not accepted
                assert took < 2.5  # before it is noticed: at most WS4REDIS_REDIS_TIMEOUT (2 s)
                if took < 0.5:
                    noticed = time.monotonic() - stopped
                    break
            assert noticed is not None and noticed < 5, noticed
            print(f"\nhung Redis noticed after {noticed:.2f} s")
            for _ in range(3):
                assert handshake(server)[1] < 0.5
            started = time.monotonic()
            status, _, body = Http(server.http).post_json("/publish", {"facility": "hang", "message": "x", "broadcast": True})
            took = time.monotonic() - started
            assert status == 503 and b"Redis" in body, (status, body)
            assert took < 3 + 1.5, took  # WS4REDIS_PUBLISHER_TIMEOUT, never retried on a timeout
            print(f"RedisPublisher raised RedisUnavailable after {took:.2f} s")
        finally:
            own_redis.proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 10
        while not handshake(server)[0]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        own_redis.client().publish("broadcast:hang", "after the hang")
        assert ws.recv(timeout=5) == "after the hang"
        ws.close()
    finally:
        server.stop()


def test_redis_down_at_startup_refuses_at_once_and_the_first_handshake_after_it_is_back_is_accepted(tmp_path, django_setup, workdir):
    redis = RedisServer(tmp_path)  # not started yet
    server = start("pywsgi", redis, workdir, WS4REDIS_TEST_HEARTBEAT="")
    try:
        accepted, took = handshake(server)
        assert not accepted and took < 0.5, took
        time.sleep(6)  # long enough for an unchecked backoff to reach its 5 s cap
        assert handshake(server)[1] < 0.5
        redis.start()
        wait_for_port(redis.port)
        back = time.monotonic()
        accepted, took = handshake(server)
        print(f"\nfirst handshake after Redis came back: accepted={accepted} in {took:.3f} s")
        assert accepted and time.monotonic() - back < 1
    finally:
        server.stop()
        redis.stop()


def test_killed_subscription_is_resubscribed_and_possibly_missed_messages_are_counted(own_redis, django_setup, workdir):
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="")
    try:
        ws = connect(f"{server.ws}/ws/gap?subscribe-broadcast", open_timeout=5, max_queue=None)
        published = []
        done = threading.Event()

        def publish():
            client = own_redis.client()
            while not done.is_set():
                n = len(published)
                client.publish("broadcast:gap", str(n))
                published.append(n)

        thread = threading.Thread(target=publish)
        thread.start()
        time.sleep(0.3)
        own_redis.client().client_kill_filter(_type="pubsub")
        time.sleep(1.0)
        done.set()
        thread.join()
        received = []
        try:
            while True:
                received.append(int(ws.recv(timeout=1)))
        except TimeoutError:
            pass
        missed = len(published) - len(received)
        assert received[-1] == published[-1], "messages published after the resubscription must arrive"
        metrics = stats(server)["metrics"]
        print(f"\n{len(published)} published, {missed} missed, counted as possibly missed: {metrics['messages_possibly_missed']}, "
              f"gap {metrics['subscription_gap_seconds'] * 1000:.0f} ms")
        assert missed > 0, "the kill lost nothing: the test proves nothing"
        assert metrics["redis_reconnects"] == 1
        assert metrics["subscription_gaps"] == 1
        assert missed <= metrics["messages_possibly_missed"] <= len(published)
        ws.close()
    finally:
        server.stop()


def test_redis_restart_is_resubscribed_within_half_a_second_and_counted(own_redis, django_setup, workdir):
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="")
    try:
        ws = connect(f"{server.ws}/ws/restart?subscribe-broadcast", open_timeout=5, max_queue=None)
        own_redis.stop()
        time.sleep(1)
        own_redis.start()
        back = time.monotonic()
        client, sent = own_redis.client(), 0
        while True:  # publish as fast as one client can until the socket hears one
            client.publish("broadcast:restart", str(sent))
            sent += 1
            try:
                first = int(ws.recv(timeout=0.001))
                break
            except TimeoutError:
                assert time.monotonic() - back < 5
        resubscribed = time.monotonic() - back
        time.sleep(SNAPSHOT_WAIT)
        metrics = stats(server)["metrics"]
        print(f"\nRedis restart: resubscribed {resubscribed:.3f} s after Redis listened again; {first} messages missed, "
              f"{metrics['messages_possibly_missed']} counted as possibly missed")
        assert resubscribed < 1.0
        assert metrics["redis_reconnects"] == 1 and metrics["subscription_gaps"] == 1
        assert first <= metrics["messages_possibly_missed"] <= sent
        ws.close()
    finally:
        server.stop()


SNAPSHOT_WAIT = 0.5  # the hub reads Redis' PUBLISH count in a greenlet of its own after resubscribing


def test_output_buffer_kill_during_a_worker_stall_is_resubscribed_and_counted(own_redis, django_setup, workdir):
    """The worker stops reading for 4 s (SIGSTOP), Redis drops its subscription past a 256 KiB output buffer."""
    own_redis.client().config_set("client-output-buffer-limit", "pubsub 262144 262144 0")
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="")
    try:
        ws = connect(f"{server.ws}/ws/stall?subscribe-broadcast", open_timeout=5, max_queue=None)
        time.sleep(1.5)  # a reading of Redis' PUBLISH count before the stall
        worker = server.pids()[-1]
        client, payload, sent = own_redis.client(), "x" * 1000, 0
        os.kill(worker, signal.SIGSTOP)
        try:
            stalled = time.monotonic()
            while time.monotonic() - stalled < 4:
                client.publish("broadcast:stall", f"{sent} {payload}")
                sent += 1
        finally:
            os.kill(worker, signal.SIGCONT)
        deadline = time.monotonic() + 5
        received = []
        while time.monotonic() < deadline:  # go on publishing until the socket hears the new ones
            client.publish("broadcast:stall", f"{sent} {payload}")
            sent += 1
            try:
                while True:
                    received.append(int(ws.recv(timeout=0.01).split()[0]))
            except TimeoutError:
                pass
            if received and received[-1] == sent - 1:
                break
        assert received and received[-1] == sent - 1, "nothing published after the stall arrived"
        time.sleep(0.5)
        metrics = stats(server)["metrics"]
        missed = sent - len(received)
        print(f"\noutput-buffer kill during a 4 s stall: {sent} published, {missed} missed, "
              f"{metrics['messages_possibly_missed']} counted as possibly missed")
        assert missed > 0
        assert metrics["redis_reconnects"] == 1
        assert missed <= metrics["messages_possibly_missed"] <= sent
        ws.close()
    finally:
        server.stop()
