"""The publisher API Django code calls, against a real redis-server."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace

import pytest

from ws4redis_mw.history import parse_published


@pytest.fixture
def redis(django_setup, redis_server):
    return redis_server.client()


def fake_request(username="john", groups=("admins",), session_key="s3ss10nk3y"):
    """A stand-in for an authenticated request: user, session with groups read just now."""
    user = SimpleNamespace(is_authenticated=True, get_username=lambda: username, pk=1, groups=None)
    session = {"ws4redis:memberof": list(groups), "ws4redis:memberof_at": time.time()}
    return SimpleNamespace(user=user, session=SimpleNamespace(session_key=session_key, get=session.get))


def name():
    return "p" + uuid.uuid4().hex[:10]


def test_publish_reaches_a_subscriber_and_is_kept_with_expire(redis):
    from ws4redis_mw import RedisMessage, RedisPublisher

    facility = name()
    pubsub = redis.pubsub()
    pubsub.subscribe(f"broadcast:{facility}")
    pubsub.get_message(timeout=1)
    RedisPublisher(facility=facility, broadcast=True).publish_message(RedisMessage("Hello"), expire=30)
    # The test project keeps history: the payload comes with its epoch and offset in front.
    assert parse_published(pubsub.get_message(timeout=2)["data"])[1:] == (1, b"Hello")
    assert redis.get(f"broadcast:{facility}") == b"Hello"
    assert 0 < redis.ttl(f"broadcast:{facility}") <= 30
    assert redis.xlen(f"history:{{broadcast:{facility}}}") == 1


def test_publish_without_history_sends_the_raw_payload(redis):
    from ws4redis_mw import RedisMessage
    from ws4redis_mw.redis_store import RedisStore
    from ws4redis_mw.settings import Settings

    facility = name()
    pubsub = redis.pubsub()
    pubsub.subscribe(f"broadcast:{facility}")
    pubsub.get_message(timeout=1)
    store = RedisStore(redis, settings=Settings(history=None))
    store._publishers = {f"broadcast:{facility}"}
    store.publish_message(RedisMessage("Hello"), expire=0)
    assert pubsub.get_message(timeout=2)["data"] == b"Hello"
    assert not redis.exists(f"history:{{broadcast:{facility}}}")


def commands(redis, name: str) -> int:
    return int(redis.info("commandstats").get(f"cmdstat_{name}", {}).get("calls", 0))


@pytest.mark.parametrize("transaction", [True, False])
def test_pipeline_publish_message_reaches_every_user_with_history_as_ws4redis_did(redis, transaction):
    from ws4redis_mw import RedisMessage, RedisPublisher

    facility, users = name(), [f"u{i}" for i in range(10)]
    pubsub = redis.pubsub()
    pubsub.subscribe(*(f"user:{user}:{facility}" for user in users))
    for _ in users:
        pubsub.get_message(timeout=1)
    before = commands(redis, "exec")
    RedisPublisher(facility=facility, users=users).pipeline_publish_message(RedisMessage("Hello"), 10, transaction=transaction)
    assert commands(redis, "exec") - before == (1 if transaction else 0)
    got = {}
    while len(got) < len(users):
        message = pubsub.get_message(timeout=2)
        assert message is not None, got
        if message["type"] == "message":
            got[message["channel"].decode()] = parse_published(message["data"])[1:]
    assert got == {f"user:{user}:{facility}": (1, b"Hello") for user in users}
    assert all(redis.get(f"user:{user}:{facility}") == b"Hello" for user in users)


def test_expire_zero_publishes_without_keeping(redis):
    from ws4redis_mw import RedisMessage, RedisPublisher

    facility = name()
    RedisPublisher(facility=facility, broadcast=True).publish_message(RedisMessage("x"), expire=0)
    assert redis.get(f"broadcast:{facility}") is None


def test_self_stands_for_the_requests_user_groups_and_session(redis):
    from ws4redis_mw import SELF, RedisPublisher

    publisher = RedisPublisher(facility="chat", users=[SELF, "mary"], groups=[SELF], sessions=[SELF], request=fake_request())
    assert sorted(publisher._publishers) == sorted([
        "user:john:chat", "user:mary:chat", "group:admins:chat", "session:s3ss10nk3y:chat",
    ])


def test_fetch_message_prefers_session_then_user_then_group_then_broadcast(redis):
    from ws4redis_mw import RedisMessage, RedisPublisher

    facility = name()
    request = fake_request()
    RedisPublisher(facility=facility, broadcast=True).publish_message(RedisMessage("b"))
    publisher = RedisPublisher()
    assert publisher.fetch_message(request, facility) == b"b"
    RedisPublisher(facility=facility, groups=["admins"]).publish_message(RedisMessage("g"))
    assert publisher.fetch_message(request, facility) == b"g"
    RedisPublisher(facility=facility, users=["john"]).publish_message(RedisMessage("u"))
    assert publisher.fetch_message(request, facility) == b"u"
    RedisPublisher(facility=facility, sessions=["s3ss10nk3y"]).publish_message(RedisMessage("s"))
    assert publisher.fetch_message(request, facility) == b"s"
    assert publisher.fetch_message(request, facility, audience="broadcast") == b"b"


@pytest.mark.parametrize("facility", ["a:b", "{x}", "a{x}b"])
def test_facility_with_colon_or_braces_is_refused_by_the_publisher(redis, facility):
    from ws4redis_mw import RedisPublisher
    from ws4redis_mw.channels import InvalidFacility

    with pytest.raises(InvalidFacility):
        RedisPublisher(facility=facility, broadcast=True)


def test_redis_message_filters_heartbeat_and_non_messages(django_setup):
    from ws4redis_mw import RedisMessage

    assert RedisMessage("--heartbeat--") is None
    assert RedisMessage([b"subscribe", b"chan", 1]) is None
    assert RedisMessage([b"message", b"chan", b"data"]) == b"data"
    assert RedisMessage("é") == "é".encode()
    with pytest.raises(ValueError):
        from ws4redis_mw import RedisPublisher

        RedisPublisher(facility="x", broadcast=True).publish_message("not a RedisMessage")


def test_publish_needs_a_list_of_users(django_setup):
    from ws4redis_mw import RedisPublisher

    with pytest.raises(ValueError):
        RedisPublisher(facility="x", users=42)


def test_ws4redis_deprecated_audience_forms_still_work_with_a_warning(django_setup):
    """ws4redis 0.6 took ``users=True`` (the requester) and ``users="mary"``; both still work, with its DeprecationWarning."""
    from ws4redis_mw import SELF, RedisPublisher

    with pytest.warns(DeprecationWarning, match="SELF"):
        mine = RedisPublisher(facility="x", users=True, request=fake_request(username="john"))
    with pytest.warns(DeprecationWarning, match="list or tuple"):
        single = RedisPublisher(facility="x", groups="reds")
    assert mine._publishers == {"user:john:x"} and single._publishers == {"group:reds:x"}
    assert repr(SELF) == "SELF"


def test_redis_message_is_made_of_str_or_bytes_only(django_setup):
    from ws4redis_mw import RedisMessage

    with pytest.raises(TypeError, match="str or bytes, not int"):
        RedisMessage(42)


def test_connection_setting_accepts_a_url_or_a_dict():
    from ws4redis_mw.connection import connection_kwargs

    assert connection_kwargs("redis://:pw@h:7000/3") == {"host": "h", "port": 7000, "db": 3, "password": "pw"}
    assert connection_kwargs("unix:///run/redis.sock?db=2")["path"] == "/run/redis.sock"
    assert connection_kwargs({"host": "h", "port": 1, "db": 0, "password": None}) == {"host": "h", "port": 1, "db": 0, "password": None}


def test_ws4redis_connection_dicts_become_redis_py_connection_arguments():
    from redis.connection import SSLConnection, UnixDomainSocketConnection

    from ws4redis_mw.connection import connection_kwargs

    unix = connection_kwargs({"host": "localhost", "port": 6379, "unix_socket_path": "/run/r.sock", "db": 2, "password": "pw",
                              "username": "u"})
    assert unix == {"path": "/run/r.sock", "db": 2, "password": "pw", "username": "u", "connection_class": UnixDomainSocketConnection}
    tls = connection_kwargs({"host": "h", "port": 6380, "ssl": True, "ssl_ca_certs": "/ca.pem", "ssl_cert_reqs": "required",
                             "ssl_certfile": "/c.pem", "ssl_keyfile": "/k.pem"})
    assert tls == {"host": "h", "port": 6380, "ssl_ca_certs": "/ca.pem", "ssl_cert_reqs": "required", "ssl_certfile": "/c.pem",
                   "ssl_keyfile": "/k.pem", "connection_class": SSLConnection}
    # As redis.Redis does: the ssl_* options count only with ssl=True.
    assert connection_kwargs({"host": "h", "ssl": False, "ssl_ca_certs": "/ca.pem"}) == {"host": "h"}



def test_many_greenlets_publishing_at_once_share_a_bounded_pool(django_setup, tmp_path):
    """Under gevent every request is a greenlet: 200 concurrent publishers must not mean 200 connections."""
    import os
    import subprocess
    import sys

    from servers import RedisServer

    own = RedisServer(tmp_path)
    own.start()
    try:
        script = f"""
from gevent import monkey; monkey.patch_all()
import gevent, redis, django
django.setup()
from ws4redis_mw import RedisPublisher, RedisMessage
def publish(i):
    RedisPublisher(facility="pool", broadcast=True).publish_message(RedisMessage(str(i)))
gevent.joinall([gevent.spawn(publish, i) for i in range(200)], raise_error=True)
print(len(redis.Redis.from_url({own.url!r}).client_list()) - 1)
"""
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.project.settings", "WS4REDIS_TEST_REDIS": own.url}
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        assert int(out.stdout.strip()) <= 4
    finally:
        own.stop()


def test_publishing_the_heartbeat_text_is_a_clear_error(django_setup, redis_server):
    from ws4redis_mw import RedisMessage, RedisPublisher

    with pytest.raises(ValueError, match="equals WS4REDIS_HEARTBEAT"):
        RedisPublisher(facility="beat", broadcast=True).publish_message(RedisMessage("--heartbeat--"))
