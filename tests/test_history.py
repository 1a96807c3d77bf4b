"""The history rules without I/O: settings, keys, envelopes, positions and recovery decisions; and the bridge's side of them."""

from __future__ import annotations

import json

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ws4redis_mw import frames
from ws4redis_mw.bridge import Bridge, Send
from ws4redis_mw.history import (
    INVALID,
    HistoryConfig,
    HistoryPolicy,
    Position,
    Publication,
    ReplayFrames,
    View,
    client_name,
    config_from_setting,
    meta_key,
    parse_positions,
    parse_published,
    recover,
    stream_key,
)
from ws4redis_mw.settings import Settings

from helpers import split_frames

ENTRIES = [(offset, f"m{offset}".encode()) for offset in range(5, 11)]
VIEW = View("e1", 10, ENTRIES)


def test_history_setting_is_checked():
    assert config_from_setting({"size": 100, "ttl": 300}) == HistoryConfig(100, 300)
    assert config_from_setting(None) is None
    for bad in ({"size": 0, "ttl": 1}, {"size": 10}, {"size": 1, "ttl": 1, "color": 2}, [100, 300]):
        with pytest.raises(ValueError):
            config_from_setting(bad)


def test_meta_is_kept_at_least_as_long_as_the_history():
    assert config_from_setting({"size": 1, "ttl": 200000}).meta_ttl == 200000


def test_callable_policy_decides_per_facility_and_audience():
    policy = HistoryPolicy(lambda facility, audience: {"size": 5, "ttl": 60} if facility == "news" and audience != "session" else None,
                           "site")
    assert policy.for_channel("site:broadcast:news") == HistoryConfig(5, 60)
    assert policy.for_channel("site:group:a:b:news") == HistoryConfig(5, 60)  # a group name may hold ':'
    assert policy.for_channel("site:session:k:news") is None
    assert policy.for_channel("site:broadcast:chat") is None


def test_history_keys_keep_the_prefix_and_never_name_a_channel():
    assert stream_key("site:broadcast:news", "site") == "site:history:{site:broadcast:news}"
    assert meta_key("site:broadcast:news", "site") == "site:history-meta:{site:broadcast:news}"
    assert stream_key("user:bob:news", None) == "history:{user:bob:news}"


def test_history_keys_share_the_channels_cluster_slot():
    from redis.crc import key_slot

    # (A channel hashed whole that holds a "}" can share its slot with no other key.)
    for channel in ("site:broadcast:news", "user:bob:news", "broadcast:a{b}c", "broadcast:a{{b}", "site:group:{x}:news",
                    "site:user:\u00e5lice{x}:news", "user:a{b:news"):
        for key in (stream_key(channel, "site"), meta_key(channel, "site")):
            assert key_slot(key.encode()) == key_slot(channel.encode()), (channel, key)


def test_channels_sharing_a_hash_tag_get_keys_of_their_own():
    # Before, each of these was history:{x}: one stream for a user, a group and a broadcast.
    channels = ["site:user:{x}:news", "site:group:{x}:news", "site:group:a{x}b:news", "site:user:b{x}:news",
                "site:broadcast:news", "site:user:a}b:news", "site:user:a%7Db:news"]
    keys = [stream_key(channel, "site") for channel in channels]
    assert len(set(keys)) == len(channels), keys
    assert all(key.startswith("site:history:{") for key in keys)
    assert len({meta_key(channel, "site") for channel in channels} | set(keys)) == 2 * len(channels)


@hypothesis.given(st.text(min_size=1), st.text(min_size=1))
def test_two_channels_never_share_a_history_key(one, other):
    hypothesis.assume(one != other)
    assert stream_key("site:" + one, "site") != stream_key("site:" + other, "site")
    assert meta_key("site:" + one, "site") != meta_key("site:" + other, "site")


def test_client_names_never_show_a_session_key_or_a_user_name():
    assert client_name("site:session:s3cr3t:news", "site") == "session"
    assert client_name("site:user:bob:news", "site") == "user"
    assert client_name("site:group:a:b:news", "site") == "group:a:b"
    assert client_name("site:broadcast:news", "site") == "broadcast"
    assert client_name("custom-channel", "site") == "custom-channel"


def test_envelope_from_redis_is_split_and_raw_payloads_pass_through():
    assert parse_published(b"\x00w4h\x00e1:42:hello:there") == ("e1", 42, b"hello:there")
    assert parse_published(b"plain") == (None, None, b"plain")
    assert parse_published(b"\x00w4h\x00e1:x:bad") == (None, None, b"\x00w4h\x00e1:x:bad")


def test_positions_are_parsed_and_bad_entries_are_never_recovered():
    assert parse_positions("") == {}
    assert parse_positions('{"broadcast": {"epoch": "ab12", "offset": 3}}') == {"broadcast": Position("ab12", 3)}
    bad = ['{"broadcast": {"epoch": "ab12", "offset": -1}}', '{"broadcast": {"epoch": "AB!", "offset": 1}}',
           '{"broadcast": {"epoch": "ab", "offset": 1e300}}', '{"broadcast": {"epoch": "ab", "offset": true}}',
           '{"broadcast": {"epoch": "", "offset": 5}}', '{"broadcast": 7}', '{"broadcast": {"epoch": "ab", "offset": 9007199254740993}}']
    for value in bad:
        assert parse_positions(value) == {"broadcast": INVALID}, value
    for malformed in ("{", "[1]", "null", "x" * 5000, "[" * 1000 + "]" * 1000, '{"a":' * 800 + "1" + "}" * 800):
        assert parse_positions(malformed) is None


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@hypothesis.settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), _json.map(json.dumps), st.integers(1, 2000).map(lambda depth: "[" * depth + "]" * depth),
                 st.binary().map(lambda raw: raw.decode("utf-8", "surrogateescape"))))
def test_positions_of_any_shape_never_raise(value):
    positions = parse_positions(value)
    assert positions is None or all(isinstance(position, Position) for position in positions.values())


def test_client_that_missed_a_few_gets_exactly_those():
    outcome = recover(Position("e1", 7), VIEW, 300)
    assert outcome.recovered and [offset for offset, _ in outcome.replay] == [8, 9, 10]


def test_client_that_missed_nothing_is_recovered_with_nothing_to_replay():
    outcome = recover(Position("e1", 10), View("e1", 10), 300)
    assert outcome.recovered and not outcome.replay


@pytest.mark.parametrize("position, why", [
    (Position("e0", 7), "another epoch"),
    (Position("e1", 2), "older than the history"),
    (Position("e1", 11), "in the future"),
    (INVALID, "malformed"),
])
def test_client_is_not_recovered(position, why):
    assert not recover(position, VIEW, 300).recovered, why


def test_more_missed_than_the_maximum_is_not_recovered():
    assert not recover(Position("e1", 5), VIEW, 4).recovered
    assert recover(Position("e1", 6), VIEW, 4).recovered


def test_client_that_joined_before_the_first_publication_gets_everything_since():
    outcome = recover(Position("", 0), View("e1", 2, [(1, b"a"), (2, b"b")]), 300)
    assert outcome.recovered and [data for _, data in outcome.replay] == [b"a", b"b"]
    assert recover(Position("", 0), View(None, 0), 300).recovered


# -- the bridge of an opted-in socket ---------------------------------------------

CHANNEL = "broadcast:news"
SETTINGS = Settings(max_recover=300)


def opted_in(positions, view=VIEW, kept=(), early=()):
    b = Bridge(SETTINGS, subscriptions=[CHANNEL], recover=positions, names={CHANNEL: "broadcast"}, history_channels=[CHANNEL])
    for publication in early:
        assert b.redis_message(publication) == []
    sent = [_decode(action.data) for action in b.start(0.0, kept, {CHANNEL: view}) if isinstance(action, Send)]
    return b, sent


def _decode(frame: bytes):
    ((opcode, payload),), rest = split_frames(frame)
    assert opcode == frames.Opcode.TEXT and not rest
    return json.loads(payload)


def test_opted_in_client_gets_the_report_then_what_it_missed_then_what_arrived_meanwhile_without_duplicates():
    early = [Publication(CHANNEL, b"m10", "e1", 10), Publication(CHANNEL, b"m11", "e1", 11)]
    b, sent = opted_in({"broadcast": Position("e1", 8)}, early=early)
    assert sent[0] == {"type": "recovery", "recovered": True, "missed": 2,
                       "channels": {"broadcast": {"epoch": "e1", "offset": 10, "recovered": True}}}
    assert [(m["data"], m["offset"]) for m in sent[1:]] == [("m9", 9), ("m10", 10), ("m11", 11)]
    assert b.redis_message(Publication(CHANNEL, b"m11", "e1", 11)) == []  # seen already


def test_not_recovered_client_is_told_so_and_gets_the_kept_message():
    _, sent = opted_in({"broadcast": Position("e0", 8)}, kept=[b"last"])
    assert sent[0]["recovered"] is False and sent[0]["channels"]["broadcast"] == {"epoch": "e1", "offset": 10, "recovered": False}
    assert sent[1] == {"type": "message", "channel": "broadcast", "data": "last", "kept": True}


def recovering_bridge(max_backlog: int, offset: int) -> Bridge:
    """A socket on CHANNEL that asks to recover from ``offset`` of epoch e1, with that backlog bound."""
    return Bridge(Settings(max_recover=300, max_backlog=max_backlog), subscriptions=[CHANNEL],
                  recover={"broadcast": Position("e1", offset)}, names={CHANNEL: "broadcast"}, history_channels=[CHANNEL])


def test_replay_larger_than_the_backlog_bound_is_not_recovered_and_queues_nothing_but_the_kept_message():
    view = View("e1", 10, [(offset, b"x" * 1000) for offset in range(1, 11)])
    b = recovering_bridge(max_backlog=5000, offset=0)
    sent = [_decode(action.data) for action in b.start(0.0, [b"last"], {CHANNEL: view}) if isinstance(action, Send)]
    assert sent[0]["recovered"] is False and sent[0]["missed"] == 0
    assert sent[1:] == [{"type": "message", "channel": "broadcast", "data": "last", "kept": True}]
    assert b.recovered is False


def test_replay_within_the_backlog_bound_is_recovered_exactly():
    view = View("e1", 10, [(offset, b"x" * 1000) for offset in range(1, 11)])
    b = recovering_bridge(max_backlog=20000, offset=2)
    sent = [_decode(action.data) for action in b.start(0.0, [b"last"], {CHANNEL: view}) if isinstance(action, Send)]
    assert sent[0]["recovered"] is True and sent[0]["missed"] == 8
    assert [m["offset"] for m in sent[1:]] == list(range(3, 11))


def test_replay_of_one_publication_fits_whatever_its_size_as_a_live_message_does():
    view = View("e1", 1, [(1, b"x" * 9000)])
    b = recovering_bridge(max_backlog=5000, offset=0)
    sent = [_decode(action.data) for action in b.start(0.0, [], {CHANNEL: view}) if isinstance(action, Send)]
    assert sent[0]["recovered"] is True and len(sent[1]["data"]) == 9000


def test_replayed_envelopes_are_encoded_once_and_shared_within_a_byte_bound():
    cache = ReplayFrames(max_bytes=300)
    first = cache.get("broadcast:news", "broadcast", b"x" * 100, "e1", 1)
    assert cache.get("broadcast:news", "broadcast", b"x" * 100, "e1", 1) is first
    for offset in range(2, 6):
        cache.get("broadcast:news", "broadcast", b"x" * 100, "e1", offset)
    assert cache.size <= 300 and cache.get("broadcast:news", "broadcast", b"x" * 100, "e1", 1) is not first


def test_replayed_envelopes_of_two_channels_with_one_client_name_never_mix():
    cache = ReplayFrames()
    alice = cache.get("user:alice:news", "user", b"for alice", "e1", 1)
    bob = cache.get("user:bob:news", "user", b"for bob", "e1", 1)
    assert _decode(alice)["data"] == "for alice" and _decode(bob)["data"] == "for bob"


def test_binary_payload_travels_as_base64_in_an_envelope():
    b, _ = opted_in({})
    (action,) = b.redis_message(Publication(CHANNEL, b"\xff\x00", "e1", 11))
    assert _decode(action.data)["data_base64"] == "/wA="


def test_client_without_recover_gets_raw_payloads_as_before():
    b = Bridge(SETTINGS, subscriptions=[CHANNEL], names={CHANNEL: "broadcast"}, history_channels=[CHANNEL])
    b.start(0.0)
    assert b.redis_message(Publication(CHANNEL, b"raw", "e1", 11)) == [Send(frames.encode_message(b"raw"))]
