"""The I/O of one websocket: moves bytes and timers for :class:`~ws4redis_mw.bridge.Bridge`.

Every rule lives in the bridge; this module only reads, writes and carries
out the bridge's actions.  An open socket holds no greenlet of its own.

* **Reading.**  :meth:`WebSocket.open` starts a read watcher on the socket's
  descriptor: the event loop calls back when bytes arrive, and the callback
  reads once (at most :data:`READ_SIZE`) without blocking, so a client that
  always has data gets one read per loop iteration like everyone else.  A
  :class:`~ws4redis_mw.bridge.Publish` needs a round trip to Redis, a
  :class:`~ws4redis_mw.bridge.Renew` one to the database (``renew``): reading
  pauses while a greenlet carries out that read's actions, in order.
* **Writing.**  Frames are queued and written once the running callback or
  greenlet yields (the hub's :meth:`~ws4redis_mw.hub.Hub.flush_soon`), with a
  non-blocking send from the event loop: at a steady rate that is one system
  call per message and socket, with no greenlet switch; frames queued
  meanwhile (a burst) leave together in one write.  Only what the kernel did
  not take goes to a writer greenlet (:class:`~ws4redis_mw.ondemand.OnDemand`),
  which exists while that backlog does.  ``unsent`` (what the kernel has not
  taken, in bytes) is what the bridge bounds.
* **Closing.**  A server-side close drops the frames not yet begun, finishes
  a frame the kernel has taken part of (a frame is never cut in half), then
  writes the close frame; reading goes on, and the bridge discards, until the
  client's close frame, the close timeout (the transport is then aborted) or
  end of stream.  Then the socket is detached from the hub, what is queued is
  written (at most the close timeout), and the connection is closed.
* **The request.**  Under every server the connection outlives the WSGI
  request (gevent's pywsgi and gevent-websocket detach it, uWSGI's is kept on
  a duplicate descriptor): the request returns at once.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, List, Mapping, Optional

import gevent
import gevent.event
from redis.exceptions import RedisError

from . import events
from .bridge import Action, Bridge, End, Publish, Renew, Renewer, Send, StartClose
from .counters import METRICS
from .frames import CloseCode
from .history import Publication, View
from .hub import Hub, RedisUnavailable
from .ondemand import OnDemand
from .transports import Transport

__all__ = ["WebSocket", "READ_SIZE"]

logger = logging.getLogger("ws4redis_mw.websocket")

#: Bytes asked of the transport per read: what one callback may parse before
#: the others get their turn (16 KiB of the smallest frames is about 2,700).
READ_SIZE = 16 * 1024

_CLOSED = gevent.event.Event()
_CLOSED.set()


def transport_now() -> float:
    """The event loop's clock, as the hub's timer reads it."""
    return gevent.get_hub().loop.now()


class WebSocket:
    """One client connection; also the hub's :class:`~ws4redis_mw.hub.Listener`."""

    __slots__ = ("bridge", "hub", "name", "info", "_transport", "_watcher", "_closed", "_pending", "_unsent", "_flush_asked",
                 "_chunk", "_chunk_sent", "_chunk_frames", "_cut", "_writer", "on_closed", "renew", "__weakref__")

    def __init__(self, bridge: Bridge, hub: Hub, name: str = "", info: Optional[events.SocketInfo] = None):
        self.bridge = bridge
        self.hub = hub
        self.name = name
        self.info = info  # number, path and user for the structured log lines
        self._transport: Optional[Transport] = None
        self._pending: List[bytes] = []  # whole frames not begun yet
        self._unsent = 0  # bytes of _pending plus what the kernel has not taken of _chunk
        self._flush_asked = False
        # What the writer greenlet is writing: frames joined, how much of it
        # the kernel took, and the frames' lengths (to finish only the frame
        # begun when a close cuts it short).
        self._chunk: Optional[bytes] = None
        self._chunk_sent = 0
        self._chunk_frames: List[int] = []
        self._cut = False
        self._writer = OnDemand(self._write_backlog)
        self._watcher: Optional[Any] = None  # the loop's read watcher while open
        self._closed: Optional[gevent.event.Event] = None  # made only for wait_closed()
        #: Called once the connection is closed (the middleware's socket counts).
        self.on_closed: Optional[Callable[[], None]] = None
        #: Checks the fresh credentials a client sends (sockets with a lifetime).
        self.renew: Optional[Renewer] = None

    def __repr__(self) -> str:
        return f"<WebSocket {self.name}>"

    @property
    def backlog(self) -> int:
        """Bytes queued for the client that the kernel has not taken."""
        return self._unsent

    # -- called by the hub -----------------------------------------------------

    def deliver(self, publication: Publication) -> None:
        actions = self.bridge.redis_message(publication, self._unsent)
        if actions:
            self._perform(actions)

    def tick(self, now: float) -> None:
        actions = self.bridge.tick(now)
        if actions:
            self._perform(actions)

    def server_close(self, code: CloseCode, reason: str) -> None:
        self._perform(self.bridge.close(code, reason))

    def flush(self) -> None:
        """Hand what is queued to the kernel without blocking; the rest goes to the writer."""
        self._flush_asked = False
        transport = self._transport
        if transport is None or self._writer.running or not self._pending:
            return
        frames, self._pending = self._pending, []
        chunk = frames[0] if len(frames) == 1 else b"".join(frames)
        try:
            sent = transport.send_nowait(chunk)
        except OSError as exc:
            self._on_write_error(exc)
            return
        self._unsent -= sent
        if sent < len(chunk):
            self._chunk, self._chunk_sent, self._chunk_frames = chunk, sent, [len(f) for f in frames]
            self._writer.wake()

    # -- opening and closing -------------------------------------------------------

    def open(self, transport: Transport, kept_messages: Iterable[Optional[bytes]] = (),
             views: Optional[Mapping[str, View]] = None) -> None:
        """Start serving the socket; returns at once.  It ends detached and disconnected, whatever happens."""
        self._transport = transport
        loop = gevent.get_hub().loop
        # Kept and recovered messages go first, before anything delivered since attach().
        kept = [action.data for action in self.bridge.start(loop.now(), kept_messages, views) if isinstance(action, Send)]
        if self.bridge.recovered is not None:
            METRICS.recoveries["recovered" if self.bridge.recovered else "not_recovered"] += 1
        self._pending[:0] = kept
        self._unsent += sum(map(len, kept))
        self._ask_flush()
        self._watcher = loop.io(transport.fileno(), 1)
        self._watcher.start(self._on_readable)
        # Bytes the server read ahead past the handshake wake no watcher.
        loop.run_callback(self._on_readable)

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Wait until the connection is closed; ``True`` if it is."""
        if self._closed is None:
            self._closed = gevent.event.Event()
        return self._closed.wait(timeout)

    def _on_readable(self) -> None:
        transport = self._transport
        if transport is None:
            return
        try:
            data = transport.recv_nowait(READ_SIZE)
            if data is None:
                return  # woken without data: a spurious readiness
            if not data:
                self._finish("end of stream")  # the client went away, or the close timeout aborted us
                return
            actions = self.bridge.receive_data(data, transport_now(), self._unsent)
            if not actions:
                return
            if any(type(action) is Publish or type(action) is Renew for action in actions):
                self._pause_reading()
                gevent.spawn(self._perform_then_read, actions)
            else:
                self._perform(actions)
        except OSError as exc:
            self._finish(f"connection error: {exc}")
        except Exception:
            logger.exception("%s: internal error", self.name)
            self._perform(self.bridge.close(CloseCode.INTERNAL_ERROR, "internal error"))

    def _perform_then_read(self, actions: List[Action]) -> None:
        try:
            self._perform(actions)
        except Exception:
            logger.exception("%s: internal error", self.name)
            self._perform(self.bridge.close(CloseCode.INTERNAL_ERROR, "internal error"))
        if self._watcher is not None and self._transport is not None:
            self._watcher.start(self._on_readable)

    def _pause_reading(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

    def _finish(self, reason: str) -> None:
        """The connection is over: detach, write what is queued, close."""
        transport = self._transport
        watcher = self._watcher
        if transport is None or watcher is None:
            return  # finished already
        logger.debug("%s: finished: %s", self.name, reason)
        self._watcher = None
        watcher.stop()
        watcher.close()
        self.bridge.connection_lost()
        self.hub.detach(self)
        self.flush()  # a close frame may still be queued
        if self._writer.running:
            gevent.spawn(self._close_after_writer, transport)
        else:
            self._close_transport(transport)

    def _close_after_writer(self, transport: Transport) -> None:
        if not self._writer.join(timeout=self.bridge.settings.close_timeout):
            self._writer.kill()
        self._close_transport(transport)

    def _close_transport(self, transport: Transport) -> None:
        self._transport = None
        transport.close()
        if self.on_closed is not None:
            self.on_closed()
        if self._closed is not None:
            self._closed.set()
        else:
            self._closed = _CLOSED

    # -- carrying out actions ------------------------------------------------------

    def _perform(self, actions: List[Action]) -> None:
        for action in actions:
            if type(action) is Send:
                self._pending.append(action.data)
                self._unsent += len(action.data)
                self._ask_flush()
            elif type(action) is Publish:
                self._publish(action)
            elif type(action) is Renew:
                self._renew(action)
            elif type(action) is StartClose:
                self._start_close(action)
            elif type(action) is End:
                self._end(action)

    def _ask_flush(self) -> None:
        if not self._flush_asked and not self._writer.running and self._transport is not None:
            self._flush_asked = True
            self.hub.flush_soon(self)

    def _publish(self, action: Publish) -> None:
        try:
            self.hub.publish(action.channels, action.payload, action.expire, keep_history=action.history)
        except RedisUnavailable as exc:
            logger.warning("%s: publish failed, Redis unavailable: %s", self.name, exc)
            self._perform(self.bridge.publish_failed(action.payload))
        except RedisError as exc:  # an error reply (out of memory, a read-only replica, no streams before Redis 5)
            logger.error("%s: publish failed, Redis answered: %s", self.name, exc)
            self._perform(self.bridge.publish_failed(action.payload))

    def _renew(self, action: Renew) -> None:
        outcome = self.renew(action.token) if self.renew is not None else (CloseCode.POLICY_VIOLATION, "no renewal here")
        if isinstance(outcome, tuple):
            logger.info("%s: renewal refused: %s", self.name, outcome[1])
            self._perform(self.bridge.close(*outcome))
        else:
            self._perform(self.bridge.renewed(transport_now(), outcome))

    def _start_close(self, action: StartClose) -> None:
        events.closed(self.info, action.code, action.reason, self.name)
        # Messages not begun are dropped: the close frame goes next, and a
        # slow client's backlog does not have to drain first.
        self._unsent -= sum(map(len, self._pending))
        self._pending = [action.data]
        self._unsent += len(action.data)
        if self._chunk is not None:
            self._cut = True
        self._ask_flush()

    def _end(self, action: End) -> None:
        if action.abort:
            if self._transport is not None:
                self._transport.abort()  # the read watcher sees the end; a blocked writer fails
        else:
            self._finish(action.reason)

    # -- the writer greenlet ---------------------------------------------------------

    def _write_backlog(self) -> None:
        transport = self._transport
        try:
            while transport is not None:
                if self._chunk is None:
                    if not self._pending:
                        return
                    frames, self._pending = self._pending, []
                    self._chunk, self._chunk_sent, self._chunk_frames = b"".join(frames), 0, [len(f) for f in frames]
                if self._cut:
                    self._cut_chunk()
                    if self._chunk is None:
                        continue
                sent = transport.send(memoryview(self._chunk)[self._chunk_sent:])
                self._chunk_sent += sent
                self._unsent -= sent
                if self._chunk_sent >= len(self._chunk):
                    self._chunk = None
                    self._cut = False  # the cut was for this chunk; the close frame comes next
        except OSError as exc:
            self._on_write_error(exc)

    def _cut_chunk(self) -> None:
        """Keep of the chunk only up to the end of the frame the kernel has begun."""
        assert self._chunk is not None
        self._cut = False
        end = 0
        for length in self._chunk_frames:
            if end >= self._chunk_sent:
                break
            end += length
        self._unsent -= len(self._chunk) - end
        self._chunk = self._chunk[:end] if end > self._chunk_sent else None

    def _on_write_error(self, exc: OSError) -> None:
        logger.debug("%s: write failed: %s", self.name, exc)
        self._pending, self._chunk, self._unsent = [], None, 0
        if self._transport is not None:
            self._transport.abort()  # the read watcher sees the end at once
