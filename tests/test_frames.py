"""The frame codec, fed bytes directly (no sockets)."""

import os
import struct

import pytest

from ws4redis_mw import frames
from ws4redis_mw.frames import OP_CONT, OP_PING, OP_TEXT, Close, FrameParser, Message, Ping, Pong, ProtocolError

from helpers import client_frame


def parse(data: bytes, max_message_size=64 * 1024):
    parser = FrameParser(max_message_size)
    parser.feed(data)
    return list(parser.events())


def test_masked_text_frame_becomes_a_text_message():
    assert parse(client_frame(frames.OP_TEXT, "héllo".encode())) == [Message("héllo".encode(), True)]


def test_binary_frame_becomes_a_binary_message():
    assert parse(client_frame(frames.OP_BINARY, b"\x00\xff")) == [Message(b"\x00\xff", False)]


@pytest.mark.parametrize("size", [125, 126, 65535, 65536])
def test_all_three_length_encodings(size):
    payload = os.urandom(size)
    assert parse(client_frame(frames.OP_BINARY, payload), None) == [Message(payload, False)]


def test_bytes_fed_one_at_a_time_give_the_same_events():
    data = client_frame(frames.OP_TEXT, b"abc") + client_frame(frames.OP_PING, b"p")
    parser = FrameParser()
    events = []
    for byte in data:
        parser.feed(bytes([byte]))
        events.extend(parser.events())
    assert events == [Message(b"abc", True), Ping(b"p")]


def test_fragments_are_reassembled_around_a_control_frame():
    data = (client_frame(frames.OP_TEXT, b"he", fin=False) + client_frame(frames.OP_PING, b"x")
            + client_frame(frames.OP_CONT, b"llo"))
    assert parse(data) == [Ping(b"x"), Message(b"hello", True)]


def test_close_frame_gives_code_and_reason():
    assert parse(client_frame(frames.OP_CLOSE, struct.pack("!H", 4000) + b"bye")) == [Close(4000, "bye")]


def test_empty_close_frame_means_1005():
    assert parse(client_frame(frames.OP_CLOSE, b"")) == [Close(1005, "")]


def test_pong_is_reported():
    assert parse(client_frame(frames.OP_PONG, b"x")) == [Pong(b"x")]


@pytest.mark.parametrize("data, code", [
    (client_frame(frames.OP_TEXT, b"x", rsv=0x40), 1002),
    (client_frame(0x3, b"x"), 1002),
    (bytes([0x81, 0x01]) + b"x", 1002),  # unmasked
    (client_frame(frames.OP_CONT, b"x"), 1002),
    (client_frame(frames.OP_TEXT, b"a", fin=False) + client_frame(frames.OP_TEXT, b"b"), 1002),
    (client_frame(frames.OP_PING, b"x", fin=False), 1002),
    (client_frame(frames.OP_PING, b"x" * 126), 1002),
    (client_frame(frames.OP_CLOSE, b"\x03"), 1002),
    (client_frame(frames.OP_CLOSE, struct.pack("!H", 1005)), 1002),
    (client_frame(frames.OP_CLOSE, struct.pack("!H", 999)), 1002),
    (client_frame(frames.OP_CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
    (client_frame(frames.OP_TEXT, b"\xff"), 1007),
])
def test_protocol_violations_raise_with_their_close_code(data, code):
    with pytest.raises(ProtocolError) as info:
        parse(data)
    assert info.value.code == code


def test_invalid_utf8_is_found_in_the_first_fragment_without_waiting_for_the_end():
    with pytest.raises(ProtocolError) as info:
        parse(client_frame(frames.OP_TEXT, b"ok\xc0\xaf", fin=False))
    assert info.value.code == 1007


def test_utf8_sequence_split_across_fragments_is_valid():
    euro = "€".encode()
    data = client_frame(frames.OP_TEXT, euro[:1], fin=False) + client_frame(frames.OP_CONT, euro[1:])
    assert parse(data) == [Message(euro, True)]


def test_oversized_message_is_refused_from_its_header_alone():
    header_only = bytes([0x82, 0xFF]) + (1 << 30).to_bytes(8, "big")
    with pytest.raises(ProtocolError) as info:
        parse(header_only, max_message_size=1024)
    assert info.value.code == 1009


def test_fragments_adding_up_past_the_limit_are_refused():
    data = client_frame(frames.OP_TEXT, b"a" * 600, fin=False) + client_frame(frames.OP_CONT, b"a" * 600)
    with pytest.raises(ProtocolError) as info:
        parse(data, max_message_size=1000)
    assert info.value.code == 1009


def test_message_of_exactly_the_limit_passes():
    assert parse(client_frame(frames.OP_BINARY, b"a" * 1000), max_message_size=1000) == [Message(b"a" * 1000, False)]


def test_encode_message_picks_text_for_utf8_and_binary_otherwise():
    assert frames.encode_message(b"hi") == b"\x81\x02hi"
    assert frames.encode_message(b"\xff") == b"\x82\x01\xff"
    assert frames.encode_message("é") == b"\x81\x02" + "é".encode()


def test_encode_close_carries_the_code_and_a_truncated_reason():
    frame = frames.encode_close(1009, "x" * 300)
    assert frame[0] == 0x88 and frame[1] == 125
    assert struct.unpack("!H", frame[2:4]) == (1009,)


def test_encode_close_1005_has_no_payload():
    assert frames.encode_close(1005) == b"\x88\x00"


def test_long_frames_use_extended_lengths():
    assert frames.encode_frame(frames.OP_BINARY, b"a" * 200)[:4] == b"\x82\x7e\x00\xc8"
    assert frames.encode_frame(frames.OP_BINARY, b"a" * 70000)[:2] == b"\x82\x7f"


def test_message_of_too_many_frames_is_refused_with_1009():
    parser = FrameParser(64 * 1024, max_frames_per_message=3)
    parser.feed(client_frame(OP_TEXT, b"", fin=False) + client_frame(OP_CONT, b"", fin=False) * 2 + client_frame(OP_CONT, b""))
    with pytest.raises(ProtocolError) as info:
        list(parser.events())
    assert info.value.code == 1009


def test_frames_are_counted_control_frames_included():
    parser = FrameParser()
    parser.feed(client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_PING, b"") + client_frame(OP_CONT, b"b"))
    assert [type(e).__name__ for e in parser.events()] == ["Ping", "Message"] and parser.frame_count == 3
