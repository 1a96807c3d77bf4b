"""The I/O-free core of a connection, driven with bytes and events directly (no gevent, sockets or Redis)."""

import dataclasses
import struct

from ws4redis_mw import frames
from ws4redis_mw.bridge import Bridge, End, Publish, Renew, Send, Side, StartClose, State
from ws4redis_mw.frames import CloseCode, Opcode
from ws4redis_mw.history import Publication
from ws4redis_mw.settings import Settings

from helpers import client_frame

CHANNEL = "broadcast:chat"
SETTINGS = Settings(heartbeat="--hb--", heartbeat_interval=4.0, ping_interval=25.0, ping_timeout=20.0,
                    max_backlog=1000, close_timeout=2.0, expire=7, max_message_size=100)


def bridge(settings=SETTINGS, **kwargs):
    defaults = dict(subscriptions=[CHANNEL], publishers=[CHANNEL])
    defaults.update(kwargs)
    b = Bridge(settings, **defaults)
    b.start(0.0)
    return b


def text(payload):
    return client_frame(Opcode.TEXT, payload)


def redis(b, payload, unsent=0):
    return b.redis_message(Publication(CHANNEL, payload), unsent)


def test_kept_messages_are_sent_first_and_empty_ones_skipped():
    b = Bridge(SETTINGS, subscriptions=[CHANNEL])
    assert b.start(0.0, [b"old", None, b""]) == [Send(frames.encode_message(b"old"))]


def test_client_message_is_published_with_its_channels_and_expiry():
    assert bridge().receive_data(text(b"hi"), 1.0) == [Publish((CHANNEL,), b"hi", 7)]


def test_message_split_over_reads_is_published_once_complete():
    b = bridge()
    data = text(b"hello")
    assert b.receive_data(data[:3], 1.0) == []
    assert b.receive_data(data[3:], 1.0) == [Publish((CHANNEL,), b"hello", 7)]


def test_client_message_without_publish_flags_is_dropped():
    assert bridge(publishers=[]).receive_data(text(b"hi"), 1.0) == []


def test_heartbeat_is_answered_not_published():
    assert bridge().receive_data(text(b"--hb--"), 1.0) == [Send(frames.encode_message(b"--hb--"))]


def test_without_heartbeat_the_string_is_an_ordinary_message():
    b = bridge(dataclasses.replace(SETTINGS, heartbeat=None))
    assert b.receive_data(text(b"--hb--"), 1.0) == [Publish((CHANNEL,), b"--hb--", 7)]


def test_own_message_is_swallowed_once_without_echo():
    b = bridge()
    b.receive_data(text(b"mine"), 1.0)
    assert redis(b, b"mine") == []
    assert redis(b, b"mine") == [Send(frames.encode_message(b"mine"))]


def test_own_message_published_to_two_subscribed_channels_is_swallowed_on_both():
    other = "user:alice:chat"
    b = bridge(subscriptions=[CHANNEL, other], publishers=[CHANNEL, other])
    b.receive_data(text(b"mine"), 1.0)
    assert b.redis_message(Publication(other, b"mine"), 0) == []  # before: the second copy leaked
    assert redis(b, b"mine") == []
    assert redis(b, b"mine") == [Send(frames.encode_message(b"mine"))]  # someone else's, same bytes


def test_a_burst_of_own_messages_as_large_as_the_rate_limit_allows_is_swallowed_whole():
    b = bridge()
    burst = SETTINGS.publish_burst  # 100: more than the 64 remembered before
    b.receive_data(b"".join(text(b"m%d" % i) for i in range(burst)), 1.0)
    assert [redis(b, b"m%d" % i) for i in range(burst)] == [[]] * burst


def test_an_own_message_that_failed_to_publish_is_forgotten_on_every_channel():
    other = "user:alice:chat"
    b = bridge(subscriptions=[CHANNEL, other], publishers=[CHANNEL, other])
    b.receive_data(text(b"lost"), 1.0)
    b.publish_failed(b"lost")
    assert b._own == []


def test_own_message_comes_back_with_echo_keeping_its_binary_type():
    b = bridge(echo=True)
    b.receive_data(client_frame(Opcode.BINARY, b""), 1.0)
    assert redis(b, b"") == [Send(frames.encode_frame(Opcode.BINARY, b""))]


def test_ping_is_answered_with_pong_of_same_payload():
    assert bridge().receive_data(client_frame(Opcode.PING, b"p"), 1.0) == [Send(frames.encode_frame(Opcode.PONG, b"p"))]


def test_client_close_is_echoed_and_ends_the_connection():
    b = bridge()
    assert b.receive_data(client_frame(Opcode.CLOSE, struct.pack("!H", 4001) + b"bye"), 1.0) == [
        Send(frames.encode_close(4001)), End("closed by the client")]
    assert (b.state, b.closed_by, b.close_code) == (State.CLOSED, Side.CLIENT, 4001)


def test_server_close_sends_close_frame_and_waits_for_the_answer():
    b = bridge()
    assert b.close(CloseCode.GOING_AWAY, "shutdown") == [
        StartClose(frames.encode_close(1001, "shutdown"), CloseCode.GOING_AWAY, "shutdown"),
    ]
    assert (b.state, b.closed_by) == (State.CLOSING, Side.SERVER)
    assert b.receive_data(client_frame(Opcode.CLOSE, struct.pack("!H", 1001)), 1.0) == [End("close handshake complete")]
    assert b.state is State.CLOSED


def test_close_happens_once():
    b = bridge()
    b.close(CloseCode.GOING_AWAY)
    assert b.close(CloseCode.INTERNAL_ERROR) == []


def test_while_closing_messages_and_pings_are_read_and_dropped():
    b = bridge()
    b.close(CloseCode.GOING_AWAY)
    assert b.receive_data(text(b"late") + client_frame(Opcode.PING, b"p"), 1.0) == []
    assert redis(b, b"late") == [] and b.tick(100.0) == []


def test_close_timeout_ends_the_connection_abruptly():
    b = bridge()
    b.close(CloseCode.GOING_AWAY)
    assert b.tick(10.0) == []  # the first tick after the close starts the count
    assert b.tick(11.9) == []
    assert b.tick(12.0) == [End("the client did not answer our close frame", abort=True)]
    assert b.state is State.CLOSED


def test_framing_error_closes_with_its_code_and_the_bad_frame_is_skipped():
    b = bridge()
    unmasked = bytes([0x81, 2]) + b"hi"
    (action,) = b.receive_data(unmasked + text(b"ignored while closing"), 1.0)
    assert isinstance(action, StartClose) and action.code == CloseCode.PROTOCOL_ERROR
    assert b.receive_data(client_frame(Opcode.CLOSE, struct.pack("!H", 1000)), 2.0) == [End("close handshake complete")]


def test_a_frame_length_that_cannot_be_skipped_leaves_the_rest_unread():
    b = bridge()
    (action,) = b.receive_data(bytes([0x81, 0xFF]) + b"\xff" * 8 + b"mask", 1.0)
    assert isinstance(action, StartClose) and action.code == CloseCode.PROTOCOL_ERROR
    assert b.receive_data(client_frame(Opcode.CLOSE, struct.pack("!H", 1000)), 2.0) == []


def test_oversized_message_closes_with_1009():
    (action,) = bridge().receive_data(text(b"x" * 101), 1.0)
    assert isinstance(action, StartClose) and action.code == CloseCode.MESSAGE_TOO_BIG


def test_invalid_utf8_closes_with_1007():
    (action,) = bridge().receive_data(text(b"\xff"), 1.0)
    assert isinstance(action, StartClose) and action.code == CloseCode.INVALID_DATA


def test_backlog_past_the_limit_closes_with_1013():
    (action,) = redis(bridge(), b"x" * 10, unsent=995)
    assert isinstance(action, StartClose) and action.code == CloseCode.TRY_AGAIN_LATER


def test_backlog_up_to_the_limit_is_fine():
    assert redis(bridge(), b"x" * 10, unsent=1000 - 12) == [Send(frames.encode_message(b"x" * 10))]


def test_a_message_larger_than_the_limit_fits_an_empty_backlog():
    payload = b"x" * 5000
    assert redis(bridge(), payload, unsent=0) == [Send(frames.encode_message(payload))]


def test_unbounded_backlog_never_closes():
    b = bridge(dataclasses.replace(SETTINGS, max_backlog=None))
    assert redis(b, b"x", unsent=10**9) == [Send(frames.encode_message(b"x"))]


def test_failed_publish_closes_with_1013():
    (action,) = bridge().publish_failed(b"x")
    assert isinstance(action, StartClose) and action.code == CloseCode.TRY_AGAIN_LATER


def test_silent_client_gets_heartbeat_every_interval():
    b = bridge()
    assert b.tick(3.9) == []
    assert b.tick(4.0) == [Send(frames.encode_message(b"--hb--"))]
    assert b.tick(5.0) == []
    assert b.tick(8.0) == [Send(frames.encode_message(b"--hb--"))]


def test_talking_client_gets_no_heartbeat():
    b = bridge()
    b.receive_data(client_frame(Opcode.PONG, b""), 3.0)
    assert b.tick(4.0) == []


def test_silent_client_is_pinged_then_closed_with_1011_when_it_never_answers():
    b = bridge(dataclasses.replace(SETTINGS, heartbeat=None))
    assert b.tick(24.0) == []
    (ping,) = b.tick(25.0)
    assert isinstance(ping, Send) and ping.data[0] == 0x80 | Opcode.PING
    assert b.tick(44.0) == []
    (action,) = b.tick(45.0)
    assert isinstance(action, StartClose) and action.code == CloseCode.INTERNAL_ERROR


def test_any_answer_to_a_ping_keeps_the_socket():
    b = bridge(dataclasses.replace(SETTINGS, heartbeat=None))
    b.tick(25.0)
    b.receive_data(client_frame(Opcode.PONG, b"ws4redis"), 30.0)
    assert b.tick(46.0) == []
    assert b.state is State.OPEN


def test_pings_off_never_close():
    b = bridge(dataclasses.replace(SETTINGS, heartbeat=None, ping_interval=None))
    assert b.tick(1000.0) == [] and b.state is State.OPEN


def test_lost_connection_is_closed_abnormally():
    b = bridge()
    b.connection_lost()
    assert (b.state, b.closed_by, b.close_code) == (State.CLOSED, Side.CLIENT, CloseCode.ABNORMAL)
    assert redis(b, b"late") == [] and b.tick(100.0) == []


def test_frames_faster_than_the_rate_close_with_1008_and_the_rest_is_dropped():
    b = bridge(dataclasses.replace(SETTINGS, max_frame_rate=10.0))
    actions = b.receive_data(client_frame(Opcode.PONG, b"") * 50, 1.0)
    assert [a.code for a in actions if isinstance(a, StartClose)] == [CloseCode.POLICY_VIOLATION]
    assert b.receive_data(client_frame(Opcode.CLOSE, struct.pack("!H", 1000)), 2.0) == []  # no longer parsed


def test_frame_rate_refills_over_time():
    b = bridge(dataclasses.replace(SETTINGS, max_frame_rate=10.0))
    assert b.receive_data(client_frame(Opcode.PONG, b"") * 10, 1.0) == []
    assert b.receive_data(client_frame(Opcode.PONG, b"") * 10, 2.0) == []
    assert b.state is State.OPEN


def test_publishing_past_the_burst_closes_with_1008():
    b = bridge(dataclasses.replace(SETTINGS, max_publish_rate=1.0, publish_burst=3))
    actions = b.receive_data(text(b"a") * 4, 1.0)
    assert [type(a).__name__ for a in actions] == ["Publish", "Publish", "Publish", "StartClose"]
    assert actions[-1].code == CloseCode.POLICY_VIOLATION


def test_publishing_past_the_byte_rate_closes_with_1008():
    b = bridge(dataclasses.replace(SETTINGS, max_publish_bytes_rate=10.0))  # burst: max_message_size, 100 bytes
    actions = b.receive_data(text(b"a" * 60) * 2, 1.0)
    assert [type(a).__name__ for a in actions] == ["Publish", "StartClose"]
    assert actions[-1].code == CloseCode.POLICY_VIOLATION


def test_pongs_for_a_client_that_does_not_read_count_against_the_backlog():
    (action,) = [a for a in bridge().receive_data(client_frame(Opcode.PING, b"p"), 1.0, unsent=999) if isinstance(a, StartClose)]
    assert action.code == CloseCode.TRY_AGAIN_LATER


def test_expire_given_to_the_bridge_applies_to_its_publishes():
    assert bridge(expire=0).receive_data(text(b"hi"), 1.0) == [Publish((CHANNEL,), b"hi", 0)]


def test_after_an_oversized_message_its_rest_is_skipped_and_the_clients_close_frame_seen():
    b = bridge()
    big = text(b"x" * 300)
    (action,) = b.receive_data(big[:50], 1.0)
    assert isinstance(action, StartClose) and action.code == CloseCode.MESSAGE_TOO_BIG
    assert b.receive_data(big[50:] + client_frame(Opcode.CLOSE, struct.pack("!H", 1009)), 2.0) == [End("close handshake complete")]


def test_a_bad_close_frame_is_answered_and_the_connection_ends_at_once():
    actions = bridge().receive_data(client_frame(Opcode.CLOSE, struct.pack("!H", 999)), 1.0)
    assert [type(a) for a in actions] == [StartClose, End] and actions[0].code == CloseCode.PROTOCOL_ERROR


# -- a credential's lifetime (token sockets) --------------------------------------------

RENEWAL = b'{"type": "token", "token": "fresh"}'


def closes(actions):
    return [action.code for action in actions if isinstance(action, StartClose)]


def test_a_socket_with_a_lifetime_is_closed_with_4002_at_its_first_tick_after_expiry():
    b = bridge(lifetime=10.0)
    assert closes(b.tick(9.9)) == []
    assert closes(b.tick(10.0)) == [CloseCode.CREDENTIAL_EXPIRED]


def test_a_renewal_message_asks_for_a_check_and_is_not_published():
    b = bridge(lifetime=10.0)
    assert b.receive_data(text(RENEWAL), 1.0) == [Renew("fresh")]


def test_a_renewed_socket_lives_until_the_new_lifetime_runs_out_and_never_shortens():
    b = bridge(lifetime=10.0)
    b.renewed(5.0, 10.0)
    assert closes(b.tick(14.9)) == []
    b.renewed(6.0, 1.0)  # an older token: it does not cut the lifetime short
    assert closes(b.tick(14.9)) == []
    assert closes(b.tick(15.0)) == [CloseCode.CREDENTIAL_EXPIRED]


def test_renewals_count_against_the_publish_rate():
    b = bridge(dataclasses.replace(SETTINGS, max_publish_rate=1.0, publish_burst=1), lifetime=10.0)
    assert b.receive_data(text(RENEWAL), 1.0) == [Renew("fresh")]
    (close,) = b.receive_data(text(RENEWAL), 1.0)
    assert isinstance(close, StartClose) and close.code == CloseCode.POLICY_VIOLATION


def test_without_a_lifetime_token_shaped_text_is_published_and_nothing_expires():
    b = bridge()
    assert b.receive_data(text(RENEWAL), 1.0) == [Publish((CHANNEL,), RENEWAL, 7)]
    assert closes(b.tick(10_000.0)) == []


def test_near_misses_of_the_renewal_shape_are_published():
    b = bridge(lifetime=10.0)
    for data in (b'{"type": "token", "token": 1}', b'{"type": "token", "token": "x", "more": 1}', b'["token"]', b'{"token" ...'):
        assert b.receive_data(text(data), 1.0) == [Publish((CHANNEL,), data, 7)]
