"""The frame codec under generated input (hypothesis): any chunking, any bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ws4redis_mw import frames
from ws4redis_mw.frames import FrameParser, Message, ProtocolError

from helpers import client_frame

messages = st.lists(
    st.one_of(
        st.text(max_size=300).map(lambda t: (frames.OP_TEXT, t.encode("utf-8"))),
        st.binary(max_size=300).map(lambda b: (frames.OP_BINARY, b)),
    ),
    max_size=8,
)


def fragmented(opcode: int, payload: bytes, cuts: list) -> bytes:
    points = sorted({c % (len(payload) + 1) for c in cuts})
    pieces = [payload[a:b] for a, b in zip([0] + points, points + [len(payload)], strict=True)]
    data = b""
    for i, piece in enumerate(pieces):
        data += client_frame(opcode if i == 0 else frames.OP_CONT, piece, fin=i == len(pieces) - 1)
    return data


@settings(max_examples=300, deadline=None)
@given(
    messages,
    st.lists(st.integers(min_value=0, max_value=400), max_size=3),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1),
)
def test_any_fragmentation_and_chunking_gives_back_the_same_messages(sent, cuts, chunk_sizes):
    stream = b"".join(fragmented(opcode, payload, cuts) for opcode, payload in sent)
    parser = FrameParser(max_message_size=None)
    received, position, i = [], 0, 0
    while position < len(stream):
        size = chunk_sizes[i % len(chunk_sizes)]
        parser.feed(stream[position:position + size])
        received.extend(parser.events())
        position, i = position + size, i + 1
    assert received == [Message(payload, opcode == frames.OP_TEXT) for opcode, payload in sent]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_events_or_a_protocol_error_and_nothing_else(data):
    parser = FrameParser(max_message_size=1000)
    parser.feed(data)
    try:
        for event in parser.events():
            assert isinstance(event, (frames.Message, frames.Ping, frames.Pong, frames.Close))
    except ProtocolError as error:
        assert error.code in (1002, 1007, 1009)
