"""WebSocket framing (RFC 6455, server side), with no I/O.

Bytes from the client go into :meth:`FrameParser.feed`; whole messages and
control frames come out of :meth:`FrameParser.events` as small frozen
dataclasses.  Anything the RFC forbids raises :class:`ProtocolError` carrying
the close code to answer with:

* 1002 for a framing error (reserved bits, unknown opcode, unmasked frame,
  bad fragmentation, oversized or fragmented control frame, bad close code);
  the frame is skipped whole, so the parser can go on to the peer's close
  frame (:attr:`ProtocolError.resumable`), except after a frame length with
  its most significant bit set;
* 1007 for a text message (or close reason) that is not valid UTF-8, found as
  soon as the invalid byte arrives, not at the end of the message;
* 1009 for a message larger than ``max_message_size``, found from the frame
  header, before any of its payload is buffered, or made of more than
  ``max_frames_per_message`` frames.

:func:`encode_frame` and :func:`encode_close` build the (unmasked) frames a
server sends.  Every transport (gevent pywsgi, gevent-websocket, uWSGI) uses
this one codec, so close codes and text/binary types are the same everywhere.
"""

from __future__ import annotations

import codecs
import dataclasses
import enum
import struct
from typing import Final, Iterator, List, Optional, Union

__all__ = [
    "Opcode", "CloseCode", "OP_CONT", "OP_TEXT", "OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG",
    "Message", "Ping", "Pong", "Close", "ProtocolError", "FrameParser",
    "encode_frame", "encode_close", "encode_message", "is_valid_close_code",
]


class Opcode(enum.IntEnum):
    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """The close codes of RFC 6455 7.4.1 (and IANA's registry) this server sends or names."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005  # never on the wire: "the close frame carried no code"
    ABNORMAL = 1006  # never on the wire: "the connection ended without a close frame"
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    SESSION_ENDED = 4001  # ws4redis_mw's own: logout, a ban (ws4redis_mw.disconnect); do not reconnect
    CREDENTIAL_EXPIRED = 4002  # ws4redis_mw's own: the socket's token expired unrenewed; reconnect with a new one


OP_CONT, OP_TEXT, OP_BINARY = Opcode.CONT, Opcode.TEXT, Opcode.BINARY
OP_CLOSE, OP_PING, OP_PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG
_DATA_OPCODES = (OP_CONT, OP_TEXT, OP_BINARY)
_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)

#: Close codes a peer may send (RFC 6455 7.4 and the IANA registry);
#: 1004-1006 and 1015 are reserved, 3000-4999 belong to libraries and apps.
_VALID_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))


def is_valid_close_code(code: int) -> bool:
    return code in _VALID_CLOSE_CODES or 3000 <= code <= 4999


@dataclasses.dataclass(frozen=True)
class Message:
    """A whole data message; ``text`` says it came in text frames (valid UTF-8)."""

    data: bytes
    text: bool


@dataclasses.dataclass(frozen=True)
class Ping:
    payload: bytes


@dataclasses.dataclass(frozen=True)
class Pong:
    payload: bytes


@dataclasses.dataclass(frozen=True)
class Close:
    """A close frame from the peer; ``code`` is 1005 when it carried none."""

    code: int
    reason: str


Event = Union[Message, Ping, Pong, Close]


class ProtocolError(Exception):
    """The peer broke the protocol; close the connection with ``code``.

    ``resumable``: the parser knows where the next frame starts (the bad
    message was skipped), so it can go on to find the peer's close frame.
    ``peer_closing``: the bad frame was the peer's close frame: it has started
    the close and waits for ours.
    """

    def __init__(self, code: CloseCode, reason: str, *, resumable: bool = False, peer_closing: bool = False):
        super().__init__(f"{int(code)} {reason}")
        self.code = code
        self.reason = reason
        self.resumable = resumable
        self.peer_closing = peer_closing


def _unmask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return b""
    # XOR as one big integer: much faster in CPython than a per-byte loop.
    n = len(payload)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class FrameParser:
    """Turns the client's bytes into events; see the module docstring for the errors.

    ``max_message_size`` is in bytes, for a whole (reassembled) message;
    ``max_frames_per_message`` counts its frames (so that empty fragments
    are not free); ``None`` means no limit.  :attr:`frame_count` counts every
    frame parsed, control frames included (for rate limits).
    """

    def __init__(self, max_message_size: Optional[int] = 64 * 1024, max_frames_per_message: Optional[int] = None):
        self.max_message_size = max_message_size
        self.max_frames_per_message = max_frames_per_message
        self.frame_count = 0
        self._skip = 0  # bytes of a refused frame still to drop as they arrive
        self._buffer = bytearray()
        self._fragments: List[bytes] = []
        self._fragment_opcode: Optional[int] = None
        self._fragment_size = 0
        self._utf8: Optional[codecs.BufferedIncrementalDecoder] = None  # incremental decoder of the text message under way

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def events(self) -> Iterator[Event]:
        """Yield every complete event in what was fed so far."""
        while True:
            event = self._next_event()
            if event is None:
                return
            if event is not _CONTINUE:
                yield event

    def _next_event(self) -> Union[Event, _Continue, None]:
        buf = self._buffer
        if self._skip:
            dropped = min(self._skip, len(buf))
            del buf[:dropped]
            self._skip -= dropped
            if self._skip:
                return None
        if len(buf) < 2:
            return None
        first, second = buf[0], buf[1]
        fin, opcode, masked = first & 0x80, first & 0x0F, second & 0x80
        length, offset = second & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            (length,) = struct.unpack_from("!H", buf, 2)
            offset = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            (length,) = struct.unpack_from("!Q", buf, 2)
            if length >> 63:
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, "frame length has its most significant bit set")
            offset = 10
        end = offset + (4 if masked else 0) + length
        # A frame the RFC forbids is skipped whole once refused: the next one
        # (the client's close frame, most likely) can still be read.
        problem = None
        if first & 0x70:
            problem = "reserved bits set without a negotiated extension"
        elif not masked:
            problem = "client frames must be masked"
        elif opcode in _CONTROL_OPCODES:
            if not fin:
                problem = "fragmented control frame"
            elif length > 125:
                problem = "control frame payload longer than 125 bytes"
        elif opcode not in _DATA_OPCODES:
            problem = f"unknown opcode {opcode}"
        if problem is not None:
            self._refuse_message(end)
            raise ProtocolError(CloseCode.PROTOCOL_ERROR, problem, resumable=True)
        if opcode in _DATA_OPCODES:
            self._check_data_frame(opcode, length, end)
        if len(buf) < end:
            return None
        payload = _unmask(bytes(buf[offset + 4:end]), bytes(buf[offset:offset + 4]))
        del buf[:end]
        self.frame_count += 1
        if opcode == OP_PING:
            return Ping(payload)
        if opcode == OP_PONG:
            return Pong(payload)
        if opcode == OP_CLOSE:
            return _parse_close(payload)
        return self._data_frame(opcode, bool(fin), payload)

    def _check_data_frame(self, opcode: int, length: int, frame_size: int) -> None:
        if opcode == OP_CONT and self._fragment_opcode is None:
            self._refuse_message(frame_size)
            raise ProtocolError(CloseCode.PROTOCOL_ERROR, "continuation frame without a message to continue", resumable=True)
        if opcode != OP_CONT and self._fragment_opcode is not None:
            self._refuse_message(frame_size)
            raise ProtocolError(CloseCode.PROTOCOL_ERROR, "new message before the fragmented one ended", resumable=True)
        if self.max_message_size is not None and self._fragment_size + length > self.max_message_size:
            self._refuse_message(frame_size)
            raise ProtocolError(CloseCode.MESSAGE_TOO_BIG, f"message larger than {self.max_message_size} bytes", resumable=True)
        if self.max_frames_per_message is not None and len(self._fragments) >= self.max_frames_per_message:
            self._refuse_message(frame_size)
            raise ProtocolError(CloseCode.MESSAGE_TOO_BIG, f"message of more than {self.max_frames_per_message} frames",
                                resumable=True)

    def _refuse_message(self, frame_size: int = 0) -> None:
        """Forget the message under way, and drop ``frame_size`` bytes of the frame refused as they come."""
        self._skip = frame_size
        self._fragments, self._fragment_opcode, self._fragment_size, self._utf8 = [], None, 0, None

    def _data_frame(self, opcode: int, fin: bool, payload: bytes) -> Union[Message, _Continue]:
        if opcode != OP_CONT:
            self._fragment_opcode = opcode
            if opcode == OP_TEXT:
                self._utf8 = codecs.getincrementaldecoder("utf-8")()
        if self._utf8 is not None:
            try:
                self._utf8.decode(payload, final=fin)
            except UnicodeDecodeError:
                self._refuse_message()  # this frame is consumed already
                raise ProtocolError(CloseCode.INVALID_DATA, "text message is not valid UTF-8", resumable=True) from None
        self._fragments.append(payload)
        self._fragment_size += len(payload)
        if not fin:
            return _CONTINUE
        data = self._fragments[0] if len(self._fragments) == 1 else b"".join(self._fragments)
        message = Message(data, self._fragment_opcode == OP_TEXT)
        self._fragments, self._fragment_opcode, self._fragment_size, self._utf8 = [], None, 0, None
        return message


class _Continue(enum.Enum):
    """The type of :data:`_CONTINUE`: a frame was consumed, no event is complete yet."""

    CONTINUE = enum.auto()


_CONTINUE: Final = _Continue.CONTINUE


def _parse_close(payload: bytes) -> Close:
    if not payload:
        return Close(CloseCode.NO_STATUS, "")
    if len(payload) == 1:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "close frame with a one-byte payload", peer_closing=True)
    (code,) = struct.unpack_from("!H", payload)
    if not is_valid_close_code(code):
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}", peer_closing=True)
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(CloseCode.INVALID_DATA, "close reason is not valid UTF-8", peer_closing=True) from None
    return Close(code, reason)


def encode_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One unmasked, final frame."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


def encode_message(payload: Union[bytes, str]) -> bytes:
    """A text frame if ``payload`` is a ``str`` or valid UTF-8, else a binary frame."""
    if isinstance(payload, str):
        return encode_frame(OP_TEXT, payload.encode("utf-8"))
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return encode_frame(OP_BINARY, payload)
    return encode_frame(OP_TEXT, payload)


def encode_close(code: int = 1000, reason: str = "") -> bytes:
    """A close frame; 1005 (no status) gives an empty payload; the reason is cut to fit 125 bytes."""
    if code == CloseCode.NO_STATUS:
        return encode_frame(OP_CLOSE)
    data = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return encode_frame(OP_CLOSE, struct.pack("!H", code) + data)
