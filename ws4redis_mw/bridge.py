"""The I/O-free core of one websocket bridged to Redis channels.

A :class:`Bridge` owns a whole connection the way python-websockets'
``Protocol`` or wsproto's ``Connection`` do, without touching a socket, a
greenlet, Redis or Django.  The I/O loop (:mod:`ws4redis_mw.websocket`) tells
it what happened and carries out the actions it answers with:

=============================  ==============================================
input                          meaning
=============================  ==============================================
:meth:`Bridge.start`           the 101 is sent; kept (and recovered) messages go first
:meth:`Bridge.receive_data`    bytes from the client
:meth:`Bridge.redis_message`   a message on one of the socket's channels
:meth:`Bridge.tick`            the process timer (once a second or so)
:meth:`Bridge.publish_failed`  Redis did not take a :class:`Publish`
:meth:`Bridge.renewed`         the credential a :class:`Renew` carried is good
:meth:`Bridge.close`           the server closes (shutdown, an internal error)
:meth:`Bridge.connection_lost` the client's end is gone
=============================  ==============================================

Actions: :class:`Send` (bytes to write), :class:`Publish` (a payload, its
channels and expiry), :class:`Renew` (check a fresh credential the client
sent), :class:`StartClose` (drop what is not yet written,
write our close frame) and :class:`End` (end the connection).  Every byte the
server writes comes out of here as a :class:`Send` or :class:`StartClose`.

Its rules, in one place:

* **State.**  One value, :class:`State`: ``OPEN``, then ``CLOSING`` after the
  server sent its close frame (the client's answer is awaited, everything
  else it sends is read and discarded, until :attr:`close_timeout`), then
  ``CLOSED``.  :attr:`Bridge.closed_by` says who started the close.  A client
  that closes first gets its code echoed and the connection ends at once.
* **Heartbeat.**  A client message equal to the heartbeat string is answered
  with it and never published.  The server also sends it after
  ``heartbeat_interval`` seconds without hearing from the client (ws4redis).
* **Keepalive.**  After ``ping_interval`` seconds without a byte from the
  client the server sends a ping; if nothing at all (a pong or anything else)
  arrives within ``ping_timeout`` seconds, the peer is taken for gone and the
  socket is closed with 1011.  ``None`` turns pings off.
* **Publishing.**  A client message is published only if the socket asked
  for a ``publish-*`` flag; otherwise it is dropped (as ws4redis does).  It
  is kept for ``expire`` seconds (the middleware gives anonymous sockets
  ``anonymous_expire``, 0 by default) and enters the channels' history
  unless ``keep_history`` is false (anonymous sockets, unless
  ``anonymous_history``).
* **Rates.**  Frames read (``max_frame_rate`` per second), messages
  published (``max_publish_rate`` per second after a burst of
  ``publish_burst``) and bytes published (``max_publish_bytes_rate``) are
  token buckets; going over closes with 1008.  Pongs
  and heartbeat answers count against the backlog like everything written,
  so a client that pings and never reads is closed with 1013.
* **Echo.**  Without ``echo``, a message this socket published does not come
  back to it: each publish to a channel the socket also subscribes to is
  remembered for that channel, and the first Redis message on that channel
  with the same bytes is swallowed (one copy per channel; a burst as large as
  ``publish_burst`` is remembered whole).  With ``echo`` it comes back as the type (text or
  binary) it was sent as; every other message is sent as text when it is
  valid UTF-8, else as binary (Redis keeps bytes only).
* **Backlog.**  ``unsent`` is what the I/O loop holds that the kernel has not
  taken yet, in bytes.  A message that would take it past ``max_backlog`` closes
  the socket with 1013 (try again later); a message always fits into an
  empty backlog, whatever its size.
* **Recovery.**  A socket that asked for ``recover`` gets JSON envelopes
  instead of raw payloads (:mod:`ws4redis_mw.history`): first a report of
  each history channel's position and of what could be recovered, then the
  publications it missed, then kept messages of the channels it did not
  recover, then the live stream, in which a publication at or before the
  position it was told is dropped as already seen.  What arrives before
  :meth:`Bridge.start` waits until after the replay.  The replays of all
  channels together stay within ``max_backlog``: a channel whose missed
  publications would not fit is "not recovered", as when too many were missed.
* **Credential expiry.**  A socket opened with a credential that expires (a
  token, :mod:`ws4redis_mw.tokens`) is given its ``lifetime``; when it runs
  out the socket is closed with 4002 (``CREDENTIAL_EXPIRED``: reconnect with a
  new token).  Before that the client may send a fresh one as the text
  message ``{"type": "token", "token": "<token>"}``: never published, it
  becomes a :class:`Renew` (counted against the publish rate), and the I/O
  loop answers with :meth:`Bridge.renewed` (the new lifetime) or a close.
  Sockets of a session cookie have no lifetime and publish such text as any.
* **Close codes.**  Framing errors close with the parser's code (1002, 1007,
  1009); a publish that Redis refused closes with 1013, so the client knows
  the message was not sent; an internal error closes with 1011.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import frames, history
from .frames import CloseCode, Opcode
from .settings import Settings

__all__ = ["State", "Side", "Send", "Publish", "Renew", "Renewer", "StartClose", "End", "Action", "Bridge", "ECHO_MEMORY"]

#: How many of its own publishes a socket remembers per channel for echo
#: suppression, at least: ``publish_burst`` more, so that a burst the rate
#: limit lets through is remembered whole (only without a rate limit can a
#: client outrun it).
ECHO_MEMORY = 64


class State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"  # our close frame is out; waiting for the client's
    CLOSED = "closed"


class Side(enum.Enum):
    SERVER = "server"
    CLIENT = "client"


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    """Write ``data`` after whatever is queued."""

    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Publish:
    """Publish ``payload`` to ``channels`` and keep it ``expire`` seconds (0: not kept); in history only if ``history``."""

    channels: Tuple[str, ...]
    payload: bytes
    expire: int
    history: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Renew:
    """Check ``token``, a fresh credential from the client: answer :meth:`Bridge.renewed` or :meth:`Bridge.close`."""

    token: str


#: What checks a :class:`Renew`: the new lifetime in seconds, or the close
#: code and reason to end the socket with.
Renewer = Callable[[str], Union[float, Tuple[CloseCode, str]]]


@dataclasses.dataclass(frozen=True, slots=True)
class StartClose:
    """Drop the frames not yet begun, finish a frame already begun, then write ``data``, our close frame."""

    data: bytes
    code: CloseCode
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class End:
    """End the connection: at once when ``abort``, else once everything queued is written."""

    reason: str
    abort: bool = False


Action = Union[Send, Publish, Renew, StartClose, End]
_NOTHING: List[Action] = []  # never mutated: returned where there is nothing to do


class Bridge:
    """The rules of one websocket; see the module docstring."""

    __slots__ = (
        "subscriptions", "publishers", "echo", "state", "closed_by", "close_code",
        "settings", "expire", "keep_history", "_parser", "_heartbeat", "_heartbeat_frame", "_echoed_channels", "_own", "_own_limit",
        "_discarding", "_last_received", "_last_heartbeat", "_ping_sent_at", "_close_deadline",
        "_frame_bucket", "_publish_bucket", "_bytes_bucket", "_answered",
        "recover", "_names", "_history_channels", "_positions", "_early", "recovered",
        "_lifetime", "expires_at",
    )

    def __init__(self, settings: Settings, *, subscriptions: Sequence[str] = (), publishers: Sequence[str] = (),
                 echo: bool = False, expire: Optional[int] = None, recover: Optional[Mapping[str, history.Position]] = None,
                 names: Optional[Mapping[str, str]] = None, history_channels: Sequence[str] = (),
                 keep_history: bool = True, lifetime: Optional[float] = None):
        self.subscriptions = list(subscriptions)
        self.publishers = tuple(publishers)
        self.echo = echo
        self.state = State.OPEN
        self.closed_by: Optional[Side] = None
        self.close_code: Optional[int] = None
        self.settings = settings
        self.expire = settings.expire if expire is None else expire
        self.keep_history = keep_history  # whether its publications enter the channels' history
        self._parser = frames.FrameParser(settings.max_message_size, settings.max_frames_per_message)
        rate = settings.max_frame_rate
        self._frame_bucket = None if rate is None else TokenBucket(rate, rate)
        rate = settings.max_publish_rate
        self._publish_bucket = None if rate is None else TokenBucket(rate, settings.publish_burst)
        rate = settings.max_publish_bytes_rate
        self._bytes_bucket = None if rate is None else TokenBucket(rate, max(rate, settings.max_message_size))
        self._answered = 0  # bytes of pongs and heartbeats answered in this receive_data() call
        heartbeat = settings.heartbeat
        self._heartbeat = heartbeat.encode("utf-8") if heartbeat else None
        self._heartbeat_frame = frames.encode_message(heartbeat) if heartbeat else None
        self._echoed_channels = frozenset(self.publishers) & frozenset(self.subscriptions)
        # (channel, payload, text) of own publishes whose copy has not come back; a list: most stay empty.
        self._own: List[Tuple[str, bytes, bool]] = []
        self._own_limit = (ECHO_MEMORY + settings.publish_burst) * len(self._echoed_channels)
        self._discarding = False  # the parser failed: what the client sends is read and dropped
        self._last_received = 0.0  # set by start()
        self._last_heartbeat = 0.0
        self._ping_sent_at: Optional[float] = None
        self._close_deadline: Optional[float] = None
        #: The client's positions (client channel name -> Position) if it asked
        #: for ``recover``, else ``None`` (the original protocol: raw payloads).
        self.recover = recover
        self._names = dict(names or {})  # channel -> what an opted-in client calls it
        self._history_channels = tuple(history_channels)
        self._positions: Dict[str, Tuple[Optional[str], int]] = {}  # history channel -> (epoch, offset) the client is at
        # Opted in: publications that arrived before start(), sent after what it replays.
        self._early: Optional[List[history.Publication]] = [] if recover is not None else None
        #: After :meth:`start`: whether every channel the client gave a position for was recovered (``None``: it gave none).
        self.recovered: Optional[bool] = None
        self._lifetime = lifetime  # seconds the credential it was opened with is good for; None: no expiry
        #: When (on the ``now`` clock) the socket is closed with 4002 unless renewed; ``None``: never.
        self.expires_at: Optional[float] = None

    # -- inputs --------------------------------------------------------------

    def start(self, now: float, kept_messages: Iterable[Optional[bytes]] = (),
              views: Optional[Mapping[str, history.View]] = None) -> List[Action]:
        """The connection is open; each channel's kept message is sent first.

        An opted-in client first gets the recovery report, then what it missed
        (from ``views``, the hub's knowledge of each history channel), then the
        kept messages of channels it did not recover, then what arrived since.
        """
        self._last_received = self._last_heartbeat = now
        if self._lifetime is not None:
            self.expires_at = now + self._lifetime
        if self.recover is None:
            return [Send(frames.encode_message(message)) for message in kept_messages if message]
        actions: List[Action] = []
        report: Dict[str, Tuple[Optional[str], int, bool]] = {}
        replays: List[bytes] = []
        replayed, limit = 0, self.settings.max_backlog
        recovered_channels = set()
        for channel in self._history_channels:
            name = self._names.get(channel, channel)
            view = (views or {}).get(channel) or history.View(None, 0)
            position = self.recover.get(name)
            ok = True
            if position is not None:
                outcome = history.recover(position, view, self.settings.max_recover)
                ok = outcome.recovered
                # A replay is queued like live traffic: one that would take the
                # queue past the backlog bound is "not recovered" (the client
                # reloads), never held whole for a client that does not read; one
                # publication always fits, as a live one does into an empty queue.
                # The payloads first: an envelope is never shorter than its payload.
                single = len(outcome.replay) == 1
                if ok and not single and limit is not None:
                    ok = replayed + sum(len(data) for _, data in outcome.replay) <= limit
                if ok:
                    # Encoded once per worker, shared by every socket replaying it.
                    missed = [history.REPLAY_FRAMES.get(channel, name, data, view.epoch or "", offset)
                              for offset, data in outcome.replay]
                    size = sum(map(len, missed))
                    if not single and limit is not None and replayed + size > limit:
                        ok = False
                    else:
                        recovered_channels.add(channel)
                        replays += missed
                        replayed += size
            self._positions[channel] = (view.epoch, view.top)
            report[name] = (view.epoch, view.top, ok)
        asked = [name for name in report if name in self.recover]
        self.recovered = all(report[name][2] for name in asked) if asked else None
        actions.append(Send(history.recovery_frame(report, self.recovered is not False, len(replays))))
        actions += [Send(frame) for frame in replays]
        for channel, message in zip(self.subscriptions, kept_messages, strict=False):
            if message and channel not in recovered_channels:
                actions.append(Send(history.message_frame(self._names.get(channel, channel), message, kept=True)))
        early, self._early = self._early or [], None
        for publication in early:
            actions += self.redis_message(publication)
        return actions

    def receive_data(self, data: bytes, now: float, unsent: int = 0) -> List[Action]:
        """Bytes from the client; any byte at all proves the peer alive.

        ``unsent`` is what is queued and not yet taken by the kernel, as for
        :meth:`redis_message`.
        """
        self._last_received = now
        self._ping_sent_at = None
        if self._discarding or self.state is State.CLOSED:
            return _NOTHING
        parser = self._parser
        parser.feed(data)
        actions: List[Action] = []
        counted = parser.frame_count
        self._answered = unsent
        while True:
            try:
                for event in parser.events():
                    if self._frame_bucket is not None and self.state is State.OPEN:
                        if not self._frame_bucket.take(parser.frame_count - counted, now):
                            actions += self._fail(CloseCode.POLICY_VIOLATION, "too many frames per second")
                            break
                        counted = parser.frame_count
                    actions += self._on_event(event, now)
                    if self._discarding or self.state is State.CLOSED:  # type: ignore[comparison-overlap]  # _on_event may close
                        break
                break
            except frames.ProtocolError as error:
                actions += self._on_protocol_error(error)
                if not error.resumable or self._discarding or self.state is State.CLOSED:  # type: ignore[comparison-overlap]  # may close
                    break
                # The bad frame was skipped: read on, the client's close frame may be next.
        return actions

    def redis_message(self, publication: history.Publication, unsent: int = 0) -> List[Action]:
        """A message on one of the socket's channels; its frames are encoded once for every local socket."""
        if self.state is not State.OPEN:
            return _NOTHING
        channel = publication.channel
        if self.recover is None:
            frame = publication.frame
        elif self._early is not None:
            self._early.append(publication)
            return _NOTHING
        else:
            if publication.offset is not None and channel in self._positions:
                epoch, offset = self._positions[channel]
                if epoch == publication.epoch and publication.offset <= offset:
                    return _NOTHING  # replayed already, or before the position it was told
                self._positions[channel] = (publication.epoch, publication.offset)
            frame = publication.envelope(self._names.get(channel, channel))
        if self._own and channel in self._echoed_channels:
            own_frame = self._own_echo(channel, publication.data, frame)
            if own_frame is None:
                return _NOTHING
            frame = own_frame
        limit = self.settings.max_backlog
        if unsent and limit is not None and unsent + len(frame) > limit:
            return self.close(CloseCode.TRY_AGAIN_LATER, f"client too slow: more than {limit} bytes pending")
        return [Send(frame)]

    def tick(self, now: float) -> List[Action]:
        """The process timer: heartbeats, pings, and the close timeout."""
        if self.state is State.OPEN:
            if self.expires_at is not None and now >= self.expires_at:
                return self.close(CloseCode.CREDENTIAL_EXPIRED, "token expired")
            return self._keepalive(now)
        if self.state is State.CLOSING:
            if self._close_deadline is None:
                # Counted from the first tick after the close: +1 tick at most.
                self._close_deadline = now + self.settings.close_timeout
            elif now >= self._close_deadline:
                self.state = State.CLOSED
                return [End("the client did not answer our close frame", abort=True)]
        return _NOTHING

    def renewed(self, now: float, lifetime: float) -> List[Action]:
        """The token a :class:`Renew` carried is good for ``lifetime`` more seconds."""
        if self.state is State.OPEN and self.expires_at is not None:
            self.expires_at = max(self.expires_at, now + lifetime)
        return _NOTHING

    def publish_failed(self, payload: bytes) -> List[Action]:
        # Its copies will never come: forget them on every channel (the latest such publish).
        for channel in self._echoed_channels:
            for entry in reversed(self._own):
                if entry[0] == channel and entry[1] == payload:
                    self._own.remove(entry)
                    break
        return self.close(CloseCode.TRY_AGAIN_LATER, "message not published: Redis is unavailable")

    def close(self, code: CloseCode, reason: str = "") -> List[Action]:
        """Start a close from the server side; once only."""
        if self.state is not State.OPEN:
            return _NOTHING
        self.state = State.CLOSING
        self.closed_by = Side.SERVER
        self.close_code = code
        return [StartClose(frames.encode_close(code, reason), code, reason)]

    def _on_protocol_error(self, error: frames.ProtocolError) -> List[Action]:
        if error.peer_closing and self.state is State.OPEN:
            # Its close frame was bad, but it is closing: answer and end, it sends nothing more.
            actions = self.close(error.code, error.reason)
            self.state = State.CLOSED
            return actions + [End("the client closed with a bad close frame")]
        if error.resumable:
            return self.close(error.code, error.reason)  # keep reading frames: its close frame ends it
        return self._fail(error.code, error.reason)

    def _fail(self, code: CloseCode, reason: str) -> List[Action]:
        """Close because of what the client sent: from now on its bytes are dropped unread.

        Parsing on (to find the client's close frame) would let a flood keep
        the worker busy; the close timeout or end of stream ends it instead.
        """
        self._discarding = True
        return self.close(code, reason)

    def connection_lost(self) -> None:
        """The client's end is gone (end of stream or a socket error)."""
        if self.state is State.OPEN:
            self.closed_by = Side.CLIENT
            self.close_code = CloseCode.ABNORMAL
        self.state = State.CLOSED

    # -- rules ---------------------------------------------------------------

    def _on_event(self, event: frames.Event, now: float) -> List[Action]:
        if isinstance(event, frames.Message):
            return self._on_message(event, now) if self.state is State.OPEN else _NOTHING
        if isinstance(event, frames.Ping):
            if self.state is not State.OPEN:
                return _NOTHING
            return self._answer(frames.encode_frame(Opcode.PONG, event.payload))
        if isinstance(event, frames.Close):
            if self.state is State.CLOSING:  # the answer to our own close frame
                self.state = State.CLOSED
                return [End("close handshake complete")]
            self.state = State.CLOSED
            self.closed_by = Side.CLIENT
            self.close_code = event.code
            return [Send(frames.encode_close(event.code)), End("closed by the client")]
        return _NOTHING  # a pong: receive_data() already counted it as a sign of life

    def _answer(self, frame: bytes) -> List[Action]:
        """A pong or heartbeat answer, unless the client does not read what it asks for."""
        limit = self.settings.max_backlog
        if limit is not None and self._answered and self._answered + len(frame) > limit:
            return self._fail(CloseCode.TRY_AGAIN_LATER, f"client too slow: more than {limit} bytes pending")
        self._answered += len(frame)
        return [Send(frame)]

    def _on_message(self, message: frames.Message, now: float) -> List[Action]:
        if self._heartbeat is not None and message.data == self._heartbeat:
            assert self._heartbeat_frame is not None
            return self._answer(self._heartbeat_frame)
        if self._lifetime is not None:
            token = _renewal_token(message)
            if token is not None:
                if self._publish_bucket is not None and not self._publish_bucket.take(1, now):
                    return self._fail(CloseCode.POLICY_VIOLATION, "publishing too fast")
                return [Renew(token)]
        if not self.publishers:
            return _NOTHING
        if self._publish_bucket is not None and not self._publish_bucket.take(1, now):
            return self._fail(CloseCode.POLICY_VIOLATION, "publishing too fast")
        if self._bytes_bucket is not None and not self._bytes_bucket.take(len(message.data), now):
            return self._fail(CloseCode.POLICY_VIOLATION, "publishing too many bytes per second")
        if self._echoed_channels:
            # One copy comes back per channel it is published to and subscribed on.
            self._own += [(channel, message.data, message.text) for channel in self.publishers if channel in self._echoed_channels]
            if len(self._own) > self._own_limit:
                del self._own[:len(self._own) - self._own_limit]
        return [Publish(self.publishers, message.data, self.expire, self.keep_history)]

    def _own_echo(self, channel: str, payload: bytes, frame: bytes) -> Optional[bytes]:
        """The frame to send for a message on ``channel`` that may be our own: ``None`` to swallow it."""
        for entry in self._own:
            if entry[0] == channel and entry[1] == payload:
                self._own.remove(entry)
                if not self.echo:
                    return None
                if self.recover is not None:
                    return frame  # an envelope, whatever the type it was sent as
                opcode = Opcode.TEXT if entry[2] else Opcode.BINARY
                return frame if frame[0] & 0x0F == opcode else frames.encode_frame(opcode, payload)
        return frame

    def _keepalive(self, now: float) -> List[Action]:
        settings = self.settings
        actions: List[Action] = _NOTHING
        if self._ping_sent_at is not None:
            if settings.ping_timeout is not None and now - self._ping_sent_at >= settings.ping_timeout:
                return self.close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        elif settings.ping_interval is not None and now - self._last_received >= settings.ping_interval:
            self._ping_sent_at = now
            actions = [Send(_PING)]
        if self._heartbeat_frame is not None and now - max(self._last_received, self._last_heartbeat) >= settings.heartbeat_interval:
            self._last_heartbeat = now
            actions = actions + [Send(self._heartbeat_frame)]
        return actions


_PING = frames.encode_frame(Opcode.PING, b"ws4redis")


def _renewal_token(message: frames.Message) -> Optional[str]:
    """The token of a ``{"type": "token", "token": ...}`` message, else ``None`` (any other message)."""
    if not message.text or b'"token"' not in message.data:
        return None  # the common case, without parsing
    try:
        value = json.loads(message.data)
    except ValueError:
        return None
    if isinstance(value, dict) and value.keys() == {"type", "token"} and value["type"] == "token" and isinstance(value["token"], str):
        return value["token"]
    return None


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; starts full."""

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: Optional[float] = None

    def take(self, count: int, now: float) -> bool:
        """Take ``count`` tokens; ``False`` (and none taken) if there are not enough."""
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if count > self._tokens:
            return False
        self._tokens -= count
        return True
