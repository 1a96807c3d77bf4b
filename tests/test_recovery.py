"""History and recovery end to end: a real server, a real redis-server, real websocket clients.

Publications are made by :data:`ws4redis_mw.history.PUBLISH_SCRIPT` from the
test process (what ``RedisPublisher`` and publishing clients run), or by a raw
``PUBLISH`` as old ws4redis code does.  The test project keeps 100
publications per channel for 300 s.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import urllib.parse
import uuid

import pytest
from websockets.asyncio.client import connect as async_connect
from websockets.sync.client import connect

from ws4redis_mw import history

from helpers import assert_silent, recv, start, stats, warm_hub

CONFIG = history.HistoryConfig(100, 300)


def facility() -> str:
    return "r" + uuid.uuid4().hex[:10]


def publish(redis, name: str, payload: str, expire: int = 10, config: history.HistoryConfig = CONFIG):
    """Publish with history to the broadcast channel of ``name``, as RedisPublisher does; the offset (or the pipeline)."""
    channel = f"broadcast:{name}"
    return redis.eval(history.PUBLISH_SCRIPT, *history.publish_args(channel, None, config, payload.encode(), expire))


def meta(name: str) -> str:
    return history.meta_key(f"broadcast:{name}", None)


def stream(name: str) -> str:
    return history.stream_key(f"broadcast:{name}", None)


def recover_url(server, name: str, positions=None) -> str:
    value = "" if positions is None else "=" + urllib.parse.quote(json.dumps(positions))
    return f"{server.ws}/ws/{name}?subscribe-broadcast&recover{value}"


def envelope(ws) -> dict:
    return json.loads(recv(ws))


@pytest.fixture(scope="module")
def server(redis_server, django_setup, workdir):
    server = start("pywsgi", redis_server, workdir, WS4REDIS_TEST_HEARTBEAT="", WS4REDIS_TEST_MAX_RECOVER="20")
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server):
    return redis_server.client()


def test_plain_clients_get_raw_payloads_and_opted_in_clients_get_offsets(server, redis):
    name = facility()
    with connect(f"{server.ws}/ws/{name}?subscribe-broadcast", open_timeout=5) as plain, \
            connect(recover_url(server, name), open_timeout=5) as opted:
        report = envelope(opted)
        assert report == {"type": "recovery", "recovered": True, "missed": 0,
                          "channels": {"broadcast": {"epoch": None, "offset": 0, "recovered": True}}}
        assert publish(redis, name, "first") == 1
        assert recv(plain) == "first"
        message = envelope(opted)
        assert message["data"] == "first" and message["offset"] == 1 and message["channel"] == "broadcast"
        assert message["epoch"] == redis.hget(meta(name), "epoch").decode()


def test_reconnecting_client_gets_exactly_what_it_missed_then_the_live_stream(server, redis):
    name = facility()
    publish(redis, name, "before")
    with connect(recover_url(server, name), open_timeout=5) as ws:
        report = envelope(ws)
        position = report["channels"]["broadcast"]
        assert position["offset"] == 1
        assert envelope(ws) == {"type": "message", "channel": "broadcast", "data": "before", "kept": True}
    for i in range(5):
        publish(redis, name, f"missed {i}")
    with connect(recover_url(server, name, {"broadcast": {"epoch": position["epoch"], "offset": 1}}), open_timeout=5) as ws:
        report = envelope(ws)
        assert report["recovered"] is True and report["missed"] == 5
        assert [envelope(ws)["data"] for _ in range(5)] == [f"missed {i}" for i in range(5)]
        publish(redis, name, "live")
        live = envelope(ws)
        assert live["data"] == "live" and live["offset"] == 7
        assert_silent(ws)  # no kept message: it would repeat one replayed


def test_client_whose_history_is_gone_is_told_it_was_not_recovered(server, redis):
    name = facility()
    publish(redis, name, "one")
    epoch = redis.hget(meta(name), "epoch").decode()
    redis.delete(meta(name), stream(name))  # as after a restart without persistence
    publish(redis, name, "two")
    with connect(recover_url(server, name, {"broadcast": {"epoch": epoch, "offset": 1}}), open_timeout=5) as ws:
        report = envelope(ws)
        assert report["recovered"] is False and report["channels"]["broadcast"]["recovered"] is False
        assert report["channels"]["broadcast"]["epoch"] != epoch
        assert envelope(ws)["kept"] is True


def test_more_missed_than_the_maximum_is_not_recovered(server, redis):
    name = facility()
    publish(redis, name, "seen")
    epoch = redis.hget(meta(name), "epoch").decode()
    for i in range(21):  # WS4REDIS_MAX_RECOVER is 20 here
        publish(redis, name, str(i))
    with connect(recover_url(server, name, {"broadcast": {"epoch": epoch, "offset": 1}}), open_timeout=5) as ws:
        assert envelope(ws)["recovered"] is False


@pytest.mark.parametrize("value", [
    '{"broadcast": {"epoch": "00ff", "offset": 1}}',  # forged epoch
    '{"broadcast": {"epoch": "%s", "offset": 99999}}',  # the future
    '{"broadcast": {"epoch": "%s", "offset": -3}}',
    '{"broadcast": {"epoch": "%s", "offset": "1"}}',
    '{"broadcast": [1, 2]}',
    "{not json",
    "x" * 5000,  # longer than MAX_POSITIONS_LENGTH
])
def test_bad_positions_are_not_recovered_and_the_socket_still_works(server, redis, value):
    name = facility()
    publish(redis, name, "one")
    epoch = redis.hget(meta(name), "epoch").decode()
    url = f"{server.ws}/ws/{name}?subscribe-broadcast&recover=" + urllib.parse.quote(value.replace("%s", epoch))
    with connect(url, open_timeout=5) as ws:
        report = envelope(ws)
        assert report["recovered"] is False
        assert envelope(ws)["kept"] is True
        publish(redis, name, "still served")
        assert envelope(ws)["data"] == "still served"


def test_positions_for_channels_the_socket_does_not_subscribe_are_ignored(server, redis):
    name, other = facility(), facility()
    publish(redis, other, "secret")
    epoch = redis.hget(meta(other), "epoch").decode()
    positions = {"group:x": {"epoch": epoch, "offset": 0}, "user": {"epoch": epoch, "offset": 0}}
    with connect(recover_url(server, name, positions), open_timeout=5) as ws:
        report = envelope(ws)
        assert report == {"type": "recovery", "recovered": True, "missed": 0,
                          "channels": {"broadcast": {"epoch": None, "offset": 0, "recovered": True}}}
        assert_silent(ws)


def test_raw_publish_by_old_code_reaches_every_client_without_an_offset(server, redis):
    name = facility()
    with connect(f"{server.ws}/ws/{name}?subscribe-broadcast", open_timeout=5) as plain, \
            connect(recover_url(server, name), open_timeout=5) as opted:
        envelope(opted)
        redis.publish(f"broadcast:{name}", "from old code")
        assert recv(plain) == "from old code"
        assert envelope(opted) == {"type": "message", "channel": "broadcast", "data": "from old code"}


def test_a_logged_in_clients_publications_get_offsets_and_are_kept(server, redis):
    from conftest import Http

    http = Http(server.http)
    http.login("u" + uuid.uuid4().hex[:8])
    name = facility()
    with connect(f"{server.ws}/ws/{name}?publish-broadcast", open_timeout=5,
                 additional_headers={"Cookie": http.cookie_header()}) as sender, \
            connect(recover_url(server, name), open_timeout=5) as opted:
        envelope(opted)
        sender.send("from a client")
        message = envelope(opted)
        assert (message["data"], message["offset"]) == ("from a client", 1)
    assert redis.xlen(stream(name)) == 1


def test_anonymous_publications_are_delivered_but_never_kept_in_history(server, redis):
    """WS4REDIS_ANONYMOUS_HISTORY off and WS4REDIS_ANONYMOUS_EXPIRE 0 (the defaults): nothing an anonymous client sends stays in Redis."""
    name = facility()
    with connect(f"{server.ws}/ws/{name}?publish-broadcast", open_timeout=5) as sender, \
            connect(recover_url(server, name), open_timeout=5) as opted:
        envelope(opted)
        sender.send("from nobody")
        message = envelope(opted)
        assert message["data"] == "from nobody" and "offset" not in message, message
    assert not redis.exists(stream(name)) and not redis.exists(meta(name)) and not redis.exists(f"broadcast:{name}")


def test_a_site_that_opts_in_keeps_anonymous_publications_in_history(own_redis, django_setup, workdir):
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="", WS4REDIS_TEST_ANONYMOUS_HISTORY="1")
    redis = own_redis.client()
    name = facility()
    try:
        with connect(f"{server.ws}/ws/{name}?publish-broadcast", open_timeout=5) as sender, \
                connect(recover_url(server, name), open_timeout=5) as opted:
            envelope(opted)
            sender.send("from nobody")
            assert envelope(opted)["offset"] == 1
        assert redis.xlen(stream(name)) == 1
        assert not redis.exists(f"broadcast:{name}")  # kept messages are WS4REDIS_ANONYMOUS_EXPIRE's (0)
    finally:
        server.stop()


def test_publication_from_django_code_gets_an_offset(server, redis):
    from conftest import Http

    name = facility()
    with connect(recover_url(server, name), open_timeout=5) as opted:
        envelope(opted)
        Http(server.http).publish(name, "from a view", broadcast=True)
        message = envelope(opted)
        assert (message["data"], message["offset"]) == ("from a view", 1)


# -- the process heals its own gaps -------------------------------------------------


def test_gap_in_the_subscription_is_healed_for_every_socket(own_redis, django_setup, workdir):
    """200 subscribers (half opted in), 500 messages/s, the pub/sub connection killed three times: nothing lost."""
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="", WS4REDIS_TEST_HISTORY="3000,300")
    name = facility()
    total = 2000
    try:
        received = asyncio.run(_gap_run(server, own_redis, name, total))
        metrics = stats(server)["metrics"]
    finally:
        server.stop()
    print(f"\n{total} messages x 200 sockets, 3 kills: {metrics['history_healed']} healed, "
          f"{metrics['redis_reconnects']} reconnects, possibly missed without healing: {metrics['messages_possibly_missed']}")
    assert 1 <= metrics["redis_reconnects"] <= 3  # a kill while still reconnecting (a slow machine) finds nothing to kill
    assert metrics["history_healed"] > 0, "the kills lost nothing: the test proves nothing"
    for i, got in enumerate(received):
        assert got == list(range(total)), f"socket {i} ({'opted in' if i % 2 else 'plain'}): {len(got)} received"


async def _gap_run(server, redis, name: str, total: int):
    url = f"{server.ws}/ws/{name}?subscribe-broadcast"
    sockets = []
    for i in range(200):
        sockets.append(await async_connect(url + ("&recover" if i % 2 else ""), open_timeout=10, max_queue=None))
    received = [[] for _ in sockets]

    async def read(i, ws):
        while len(received[i]) < total:
            text = await ws.recv()
            if i % 2:
                message = json.loads(text)
                if message["type"] != "message":
                    continue
                text = message["data"]
            received[i].append(int(text))

    def publisher():
        client = redis.client()
        killer = redis.client()
        started = time.monotonic()
        for n in range(total):
            publish(client, name, str(n), expire=0, config=history.HistoryConfig(3000, 300))
            if n in (500, 1000, 1500):
                killer.client_kill_filter(_type="pubsub")
            time.sleep(max(0.0, started + (n + 1) / 500 - time.monotonic()))

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        await asyncio.wait_for(asyncio.gather(*(read(i, ws) for i, ws in enumerate(sockets))), timeout=60)
    except TimeoutError:
        pass
    finally:
        await asyncio.to_thread(thread.join)
        for ws in sockets:
            await ws.close()
    return received


def test_gap_whose_history_lost_its_epoch_is_counted_unhealed_and_live_messages_resume(own_redis, django_setup, workdir):
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="")
    name = facility()
    redis = own_redis.client()
    try:
        with connect(f"{server.ws}/ws/{name}?subscribe-broadcast", open_timeout=5) as ws:
            publish(redis, name, "before")
            assert recv(ws) == "before"
            # The subscription breaks, and meanwhile the channel's history is lost
            # (as when Redis restarts without persistence) and published to again.
            # One round trip, so that all of it happens before the server can resubscribe.
            pipe = redis.pipeline(transaction=False)
            pipe.client_kill_filter(_type="pubsub")
            pipe.delete(meta(name), stream(name))
            publish(pipe, name, "in the gap, new epoch")
            pipe.execute()
            deadline = time.monotonic() + 10
            while stats(server)["metrics"]["history_unhealed"] < 1:
                assert time.monotonic() < deadline, stats(server)["metrics"]
                time.sleep(0.1)
            publish(redis, name, "after")
            assert recv(ws) == "after"
    finally:
        server.stop()


def test_hung_redis_during_recovering_handshakes_is_refused_with_503_never_500(own_redis, django_setup, workdir):
    """A storm of 150 recovering handshakes; Redis stops answering (SIGSTOP) in its midst for 2.6 s: each gets 101 or 503.

    Handshakes caught between their kept-message read and their history read,
    or waiting on a history read queued behind the hung round trip, got a
    gevent.Timeout (a 500 with a traceback) before.
    """
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="", WS4REDIS_TEST_REDIS_HEALTH_INTERVAL="30")
    name = facility()
    redis = own_redis.client()
    try:
        warm_hub(server)
        for i in range(60):
            publish(redis, name, f"m{i}".ljust(65536, "."))  # big replays: reads that keep the worker busy
        epoch = redis.hget(meta(name), "epoch").decode()
        urls = [recover_url(server, name, {"broadcast": {"epoch": epoch, "offset": i % 50}}) for i in range(150)]
        statuses = asyncio.run(_storm(urls, own_redis.proc))
        print(f"\n{statuses.count(101)} accepted, {statuses.count(503)} refused with 503")
        assert set(statuses) <= {101, 503}, statuses
        assert 503 in statuses, "Redis hung after every handshake: the test proves nothing"
        assert "Traceback" not in server.log_text()
    finally:
        own_redis.proc.send_signal(signal.SIGCONT)
        server.stop()


async def _storm(urls, redis_process):
    from websockets.exceptions import InvalidStatus

    async def one(i, url):
        await asyncio.sleep(i * 0.005)
        try:
            async with async_connect(url, open_timeout=20):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    async def hang():
        await asyncio.sleep(0.4)
        redis_process.send_signal(signal.SIGSTOP)
        await asyncio.sleep(2.6)  # past one round trip's timeout (2 s), not two: queued reads then succeed late
        redis_process.send_signal(signal.SIGCONT)

    *statuses, _ = await asyncio.wait_for(asyncio.gather(*(one(i, url) for i, url in enumerate(urls)), hang()), 40)
    return statuses


def test_a_replay_larger_than_the_backlog_bound_is_not_recovered_and_one_that_fits_is(own_redis, django_setup, workdir):
    """WS4REDIS_MAX_BACKLOG is 1 MiB in the test project: 59 missed publications of 60 KiB do not fit, 10 do.

    Before, the whole replay was queued for the socket, read or not (6.3 MiB
    for 100 x 64 KiB, held as long as pongs kept the socket alive).
    """
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="")
    redis = own_redis.client()
    name = facility()
    try:
        for i in range(60):
            publish(redis, name, f"m{i}:".ljust(60 * 1024, "."))
        epoch = redis.hget(meta(name), "epoch").decode()
        with connect(recover_url(server, name, {"broadcast": {"epoch": epoch, "offset": 1}}), open_timeout=5,
                     max_size=None) as ws:
            report = envelope(ws)
            assert report["recovered"] is False and report["channels"]["broadcast"]["recovered"] is False, report
            kept = envelope(ws)  # the kept message, as for any channel not recovered: the client's fresh state
            assert kept.get("kept") is True and kept["data"].startswith("m59:"), kept["data"][:10]
            assert_silent(ws, 0.5)  # nothing replayed
        with connect(recover_url(server, name, {"broadcast": {"epoch": epoch, "offset": 50}}), open_timeout=5,
                     max_size=None) as ws:
            assert envelope(ws)["recovered"] is True
            replayed = [envelope(ws)["data"][:4] for _ in range(10)]
            assert replayed == [f"m{i}:"[:4] for i in range(50, 60)]
    finally:
        server.stop()


def test_a_channels_epoch_and_offset_expire_with_its_stream(server, redis):
    """Before, the meta hash of every channel outlived its stream by a day (meta_ttl's old default)."""
    name = facility()
    publish(redis, name, "one")
    assert 290 < redis.ttl(meta(name)) <= redis.ttl(stream(name)) <= 300
    config = history.HistoryConfig(100, 300, meta_ttl=3600)  # asked for: kept longer
    publish(redis, name, "two", config=config)
    assert 3590 < redis.ttl(meta(name)) <= 3600
