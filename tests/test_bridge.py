"""The per-socket logic, driven with events directly (no gevent, sockets or Redis)."""

from ws4redis_mw import frames
from ws4redis_mw.bridge import Bridge, CloseConnection, Publish, Send

CHANNEL = "broadcast:chat"


def bridge(**kwargs):
    defaults = dict(subscriptions=[CHANNEL], publishers=[CHANNEL], heartbeat="--hb--", max_pending=3)
    defaults.update(kwargs)
    return Bridge(**defaults)


def redis(b, payload, backlog=0):
    return b.on_redis_message(CHANNEL, payload, frames.encode_message(payload), backlog)


def test_client_message_is_published():
    assert bridge().on_client_event(frames.Message(b"hi", True)) == [Publish(b"hi")]


def test_client_message_without_publish_flags_is_dropped():
    assert bridge(publishers=[]).on_client_event(frames.Message(b"hi", True)) == []


def test_heartbeat_is_answered_not_published():
    assert bridge().on_client_event(frames.Message(b"--hb--", True)) == [Send(frames.encode_message(b"--hb--"))]


def test_without_heartbeat_the_string_is_an_ordinary_message():
    assert bridge(heartbeat=None).on_client_event(frames.Message(b"--hb--", True)) == [Publish(b"--hb--")]


def test_own_message_is_swallowed_once_without_echo():
    b = bridge()
    b.on_client_event(frames.Message(b"mine", True))
    assert redis(b, b"mine") == []
    assert redis(b, b"mine") == [Send(frames.encode_message(b"mine"))]


def test_own_message_comes_back_with_echo_keeping_its_binary_type():
    b = bridge(echo=True)
    b.on_client_event(frames.Message(b"", False))
    assert redis(b, b"") == [Send(frames.encode_frame(frames.OP_BINARY, b""))]


def test_idle_socket_gets_heartbeat():
    assert bridge().on_idle() == [Send(frames.encode_message(b"--hb--"))]
    assert bridge(heartbeat=None).on_idle() == []


def test_ping_is_answered_with_pong_of_same_payload():
    assert bridge().on_client_event(frames.Ping(b"p")) == [Send(frames.encode_frame(frames.OP_PONG, b"p"))]


def test_client_close_is_echoed_and_ends_the_connection():
    assert bridge().on_client_event(frames.Close(4001, "bye")) == [Send(frames.encode_close(4001)), CloseConnection(None)]


def test_answer_to_our_close_ends_without_another_close_frame():
    b = bridge()
    assert b.close(1001, "shutdown") == [CloseConnection(1001, "shutdown")]
    assert b.on_client_event(frames.Close(1001, "")) == [CloseConnection(None)]


def test_close_happens_once():
    b = bridge()
    b.close(1001)
    assert b.close(1011) == []


def test_slow_client_is_closed_with_1013():
    b = bridge()
    assert redis(b, b"x", backlog=3) == [CloseConnection(1013, "client too slow: too many messages pending")]


def test_failed_publish_closes_with_1013():
    assert bridge().on_publish_failed(b"x")[0].code == 1013


def test_protocol_error_closes_with_its_code():
    assert bridge().on_protocol_error(frames.ProtocolError(1009, "big")) == [CloseConnection(1009, "big")]


def test_nothing_is_sent_once_closing():
    b = bridge()
    b.close(1001)
    assert redis(b, b"late") == [] and b.on_idle() == []
