"""The logic of one websocket bridged to Redis channels, with no I/O.

A :class:`Bridge` is told what happened (a client event from the frame
parser, a framing error, a message from Redis, a quiet spell, a failed
publish) and answers with actions for the I/O loop to carry out:
:class:`Send` (frame bytes to write), :class:`Publish` (bytes to publish to
the socket's channels) and :class:`CloseConnection`.

Its rules, in one place:

* A client message equal to the heartbeat string is answered with the
  heartbeat and never published; so is nothing else.
* A client message is published only if the socket asked for a
  ``publish-*`` flag; otherwise it is dropped (as ws4redis does).
* Without ``echo``, a message this socket published does not come back to it:
  each publish to a channel the socket also subscribes to is remembered, and
  the first Redis message on that channel with the same bytes is swallowed.
  With ``echo`` it comes back as the type (text or binary) it was sent as;
  every other message is sent as text when it is valid UTF-8, else as binary
  (Redis keeps bytes only).
* A client whose unsent backlog reaches ``max_pending`` messages is closed
  with 1013 (try again later) rather than let memory grow; it may reconnect
  and pick up the kept message.
* Close codes: the client's own code is echoed; framing errors close with the
  parser's code (1002, 1007, 1009); a publish that Redis refused closes with
  1013 (try again later), so the client knows the message was not sent.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Union

from . import frames

__all__ = ["Send", "Publish", "CloseConnection", "Bridge"]

#: How many of its own publishes a socket remembers for echo suppression.
ECHO_MEMORY = 64


@dataclasses.dataclass(frozen=True)
class Send:
    data: bytes


@dataclasses.dataclass(frozen=True)
class Publish:
    payload: bytes


@dataclasses.dataclass(frozen=True)
class CloseConnection:
    """Send a close frame with ``code`` (unless ``None``: one was sent) and end the connection."""

    code: Optional[int]
    reason: str = ""


Action = Union[Send, Publish, CloseConnection]


class Bridge:
    def __init__(
        self,
        *,
        subscriptions: Sequence[str] = (),
        publishers: Sequence[str] = (),
        echo: bool = False,
        heartbeat: Optional[str] = None,
        max_pending: Optional[int] = None,
    ):
        self.subscriptions = list(subscriptions)
        self.publishers = list(publishers)
        self.echo = echo
        self.max_pending = max_pending
        self._heartbeat = heartbeat.encode("utf-8") if heartbeat else None
        self._heartbeat_frame = frames.encode_message(heartbeat) if heartbeat else None
        self._echoed_channels = frozenset(self.publishers) & frozenset(self.subscriptions)
        self._own: List[tuple] = []  # (payload, text) of recent own publishes; a list: most stay empty
        self.closing = False

    def on_client_event(self, event: frames.Event) -> List[Action]:
        if isinstance(event, frames.Message):
            return self._on_client_message(event)
        if isinstance(event, frames.Ping):
            return [Send(frames.encode_frame(frames.OP_PONG, event.payload))]
        if isinstance(event, frames.Close):
            if self.closing:  # the answer to our own close frame
                return [CloseConnection(None)]
            self.closing = True
            return [Send(frames.encode_close(event.code)), CloseConnection(None)]
        return []  # an unsolicited pong needs no answer

    def _on_client_message(self, message: frames.Message) -> List[Action]:
        if self._heartbeat is not None and message.data == self._heartbeat:
            return [Send(self._heartbeat_frame)]
        if not self.publishers:
            return []
        if self._echoed_channels:
            self._own.append((message.data, message.text))
            if len(self._own) > ECHO_MEMORY:
                del self._own[0]
        return [Publish(message.data)]

    def on_protocol_error(self, error: frames.ProtocolError) -> List[Action]:
        return self.close(error.code, error.reason)

    def on_redis_message(self, channel: str, payload: bytes, frame: bytes, backlog: int = 0) -> List[Action]:
        """``frame`` is ``payload`` already encoded, shared by every local socket."""
        if self.closing:
            return []
        if self._own and channel in self._echoed_channels:
            frame = self._own_echo(payload, frame)
            if frame is None:
                return []
        if self.max_pending is not None and backlog >= self.max_pending:
            return self.close(1013, "client too slow: too many messages pending")
        return [Send(frame)]

    def _own_echo(self, payload: bytes, frame: bytes) -> Optional[bytes]:
        """The frame to send for a message that may be our own: ``None`` to swallow it."""
        for entry in self._own:
            if entry[0] == payload:
                self._own.remove(entry)
                if not self.echo:
                    return None
                opcode = frames.OP_TEXT if entry[1] else frames.OP_BINARY
                return frame if frame[0] & 0x0F == opcode else frames.encode_frame(opcode, payload)
        return frame

    def on_idle(self) -> List[Action]:
        """Nothing was received for the heartbeat interval."""
        if self._heartbeat_frame is None or self.closing:
            return []
        return [Send(self._heartbeat_frame)]

    def on_publish_failed(self, payload: bytes) -> List[Action]:
        for entry in self._own:
            if entry[0] == payload:
                self._own.remove(entry)
                break
        return self.close(1013, "message not published: Redis is unavailable")

    def close(self, code: int, reason: str = "") -> List[Action]:
        """Start a close from the server side (shutdown, errors); once only."""
        if self.closing:
            return []
        self.closing = True
        return [CloseConnection(code, reason)]
