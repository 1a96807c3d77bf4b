"""History never crosses audiences, whatever the names hold: a real server, redis-server and websocket clients.

Each audience of one facility (broadcast, a user, another user, a group, a
session) gets its own publications with history; then a client of each
audience recovers from the start, and plain and opted-in clients of each go
through a gap in the subscription that the hub heals from history.  Every
client must get exactly its own channel's publications.  The user and group
names hold braces and non-ASCII letters, and the prefix a colon: before
history keys were made from the whole channel name, ``user:ålice{x}:chat``
and ``group:grüppe{x}:chat`` shared the stream ``history:{x}``, so an
opted-in client of one recovered the other's private messages.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid

import pytest
from websockets.sync.client import connect

from ws4redis_mw import history
from ws4redis_mw.channels import channel_name

from helpers import recv, start, stats

PREFIX = "site:a"  # a colon in the prefix
ALICE, BOB, GROUP = "ålice{x}", "bob{x}", "grüppe{x}"
CONFIG = history.HistoryConfig(100, 300)


@pytest.fixture(scope="module")
def server(redis_server, django_setup, workdir):
    server = start("pywsgi", redis_server, workdir, WS4REDIS_TEST_HEARTBEAT="", WS4REDIS_TEST_PREFIX=PREFIX)
    yield server
    server.stop()


@pytest.fixture
def sessions(server):
    """Cookies of a logged-in Alice (in the group) and Bob, and Alice's session key."""
    from conftest import Http

    alice, bob = Http(server.http), Http(server.http)
    session = alice.login(ALICE, groups=GROUP)["session"]
    bob.login(BOB)
    return {"alice": alice.cookie_header(), "bob": bob.cookie_header(), "session": session}


def audiences(facility: str, session: str):
    """audience label -> (channel, query flag, client's name of the channel, cookie owner)."""
    return {
        "broadcast": (channel_name(PREFIX, "broadcast", facility), "subscribe-broadcast", "broadcast", None),
        "alice": (channel_name(PREFIX, "user", facility, ALICE), "subscribe-user", "user", "alice"),
        "bob": (channel_name(PREFIX, "user", facility, BOB), "subscribe-user", "user", "bob"),
        "group": (channel_name(PREFIX, "group", facility, GROUP), "subscribe-group", f"group:{GROUP}", "alice"),
        "session": (channel_name(PREFIX, "session", facility, session), "subscribe-session", "session", "alice"),
    }


def publish(redis, channel: str, payload: str) -> None:
    """What RedisPublisher and publishing clients run for a channel with history."""
    redis.eval(history.PUBLISH_SCRIPT, *history.publish_args(channel, PREFIX, CONFIG, payload.encode(), 0))


def open_socket(server, sessions, facility: str, flag: str, cookie: str, recover: str = ""):
    headers = {"Cookie": sessions[cookie]} if cookie else {}
    path = f"/ws/{urllib.parse.quote(facility)}?{flag}{recover}"
    return connect(server.ws + path, open_timeout=5, additional_headers=headers)


def messages(ws, opted_in: bool, count: int) -> list:
    got = []
    while len(got) < count:
        text = recv(ws)
        if opted_in:
            envelope = json.loads(text)
            if envelope["type"] != "message":
                continue
            text = envelope["data"]
        got.append(text)
    return got


def test_recovering_client_of_each_audience_gets_only_its_own_channel(server, redis_server, sessions):
    facility = "chat-" + uuid.uuid4().hex[:8]
    channels = audiences(facility, sessions["session"])
    redis = redis_server.client()
    for label, (channel, _, _, _) in channels.items():
        for i in range(3):
            publish(redis, channel, f"{label} {i}")
    for label, (_, flag, name, cookie) in channels.items():
        recover = "&recover=" + urllib.parse.quote(json.dumps({name: {"epoch": "", "offset": 0}}))
        with open_socket(server, sessions, facility, flag, cookie, recover) as ws:
            report = json.loads(recv(ws))
            assert report["type"] == "recovery" and report["recovered"] is True, (label, report)
            assert report["missed"] == 3, (label, report)
            assert messages(ws, True, 3) == [f"{label} {i}" for i in range(3)], label


def test_gap_healing_delivers_to_each_audience_only_its_own_channel(own_redis, django_setup, workdir):
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="", WS4REDIS_TEST_PREFIX=PREFIX)
    sockets = []
    try:
        from conftest import Http

        alice, bob = Http(server.http), Http(server.http)
        session = alice.login(ALICE, groups=GROUP)["session"]
        bob.login(BOB)
        cookies = {"alice": alice.cookie_header(), "bob": bob.cookie_header()}
        facility = "chat-" + uuid.uuid4().hex[:8]
        channels = audiences(facility, session)
        redis, killer = own_redis.client(), own_redis.client()
        for label, (_, flag, _, cookie) in channels.items():
            for opted_in in (False, True):
                ws = open_socket(server, cookies, facility, flag, cookie, "&recover" if opted_in else "")
                if opted_in:
                    assert json.loads(recv(ws))["type"] == "recovery"
                sockets.append((label, opted_in, ws))
        for label, (channel, _, _, _) in channels.items():
            publish(redis, channel, f"{label} before")  # every hub memory starts, so a gap can be healed
        expected = {label: [f"{label} before"] for label in channels}
        for gap in range(3):
            killer.client_kill_filter(_type="pubsub")
            for label, (channel, _, _, _) in channels.items():
                publish(redis, channel, f"{label} gap {gap}")
                expected[label].append(f"{label} gap {gap}")
            time.sleep(0.5)
        healed = stats(server)["metrics"]["history_healed"]
        for label, opted_in, ws in sockets:
            assert messages(ws, opted_in, len(expected[label])) == expected[label], (label, opted_in)
    finally:
        for _, _, ws in sockets:
            ws.close()
        server.stop()
    assert healed > 0, "no publication fell into a gap: the test proves nothing"
