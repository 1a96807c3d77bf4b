"""The I/O of one websocket: a thin gevent loop around :class:`~ws4redis_mw.bridge.Bridge`.

The request's own greenlet reads (:meth:`WebSocket.run`): bytes from the
transport go through the frame parser into the bridge, and the bridge's
actions are carried out.  Frames (messages, pongs, heartbeats, the close frame)
go through one outbox, in order, written by a second greenlet that exists
only while there is something to write, so an idle socket costs one
greenlet.

Closing: when the server starts the close (an error, a slow client,
shutdown), it sends its close frame and waits up to :data:`CLOSE_TIMEOUT`
seconds for the client's answer; then the connection is ended and the socket
detached from the hub, whatever happened before.
"""

from __future__ import annotations

import logging
from typing import Iterable, List, Optional

import gevent

from . import frames
from .bridge import Bridge, CloseConnection, Publish, Send
from .hub import Hub, RedisUnavailable

__all__ = ["WebSocket", "CLOSE_TIMEOUT"]

logger = logging.getLogger("ws4redis_mw.websocket")

#: Seconds to wait for the client's close frame after sending ours.
CLOSE_TIMEOUT = 2.0
#: Bytes asked of the transport per read.
READ_SIZE = 64 * 1024


class WebSocket:
    """One client connection; also the hub's :class:`~ws4redis_mw.hub.Listener`."""

    def __init__(self, bridge: Bridge, hub: Hub, *, max_message_size: Optional[int], heartbeat_interval: Optional[float], expire: int, name: str = ""):
        self.bridge = bridge
        self.hub = hub
        self.name = name
        self._parser = frames.FrameParser(max_message_size)
        self._heartbeat_interval = heartbeat_interval
        self._expire = expire
        self._transport = None
        self._outbox: List[bytes] = []  # a list, not a deque: 56 bytes when empty, and drained whole
        self._writer: Optional[gevent.Greenlet] = None
        self._done = False  # no more reading: the close handshake is over or the peer is gone
        self._close_deadline: Optional[float] = None

    # -- called by the hub (another greenlet) ---------------------------------

    def deliver(self, channel: str, payload: bytes, frame: bytes) -> None:
        self._perform(self.bridge.on_redis_message(channel, payload, frame, len(self._outbox)))

    def server_close(self, code: int, reason: str) -> None:
        self._perform(self.bridge.close(code, reason))

    # -- the request greenlet -------------------------------------------------

    def run(self, transport, kept_messages: Iterable[Optional[bytes]] = ()) -> None:
        """Serve the socket until it is closed; always ends detached and disconnected."""
        self._transport = transport
        # Kept messages go first, before anything delivered since attach().
        self._outbox[:0] = [frames.encode_message(m) for m in kept_messages if m]
        self._wake_writer()
        try:
            while not self._done:
                data = transport.recv(READ_SIZE, self._read_timeout())
                if data is None:
                    self._on_timeout()
                elif not data:
                    break  # the client went away without a close frame
                else:
                    self._on_data(data)
        except OSError as exc:
            logger.debug("%s: connection error: %s", self.name, exc)
        except Exception:
            logger.exception("%s: internal error", self.name)
            self._perform(self.bridge.close(1011, "internal error"))
        finally:
            self.hub.detach(self)
            writer = self._writer
            if writer is not None:
                writer.join(timeout=CLOSE_TIMEOUT)
                writer.kill(block=False)
            transport.close()

    def _read_timeout(self) -> Optional[float]:
        if self._close_deadline is not None:
            return max(0.0, self._close_deadline - gevent.get_hub().loop.now())
        return self._heartbeat_interval

    def _on_timeout(self) -> None:
        if self._close_deadline is not None:
            if gevent.get_hub().loop.now() >= self._close_deadline:
                self._done = True  # the client never answered our close frame
        else:
            self._perform(self.bridge.on_idle())

    def _on_data(self, data: bytes) -> None:
        self._parser.feed(data)
        try:
            for event in self._parser.events():
                self._perform(self.bridge.on_client_event(event))
                if self._done:
                    return
        except frames.ProtocolError as error:
            self._perform(self.bridge.on_protocol_error(error))
            self._done = True  # nothing more can be parsed after a framing error

    def _perform(self, actions) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._send(action.data)
            elif isinstance(action, Publish):
                self._publish(action.payload)
            elif isinstance(action, CloseConnection):
                self._close(action)

    def _publish(self, payload: bytes) -> None:
        try:
            self.hub.publish(self.bridge.publishers, payload, self._expire)
        except RedisUnavailable as exc:
            logger.warning("%s: publish failed, Redis unavailable: %s", self.name, exc)
            self._perform(self.bridge.on_publish_failed(payload))

    def _close(self, action: CloseConnection) -> None:
        if action.code is None:
            self._done = True  # the close handshake is complete
            return
        if action.code not in (1000, 1001):
            logger.info("%s: closing with %d: %s", self.name, action.code, action.reason)
        # Messages not yet handed to the socket are dropped: the close frame
        # goes next, and a slow client's backlog does not have to drain first.
        self._outbox = [frames.encode_close(action.code, action.reason)]
        self._wake_writer()
        self._close_deadline = gevent.get_hub().loop.now() + CLOSE_TIMEOUT
        # Wake a reader blocked without a timeout so it starts counting.
        if self._transport is not None:
            self._transport.interrupt()

    # -- the writer greenlet --------------------------------------------------

    def _send(self, data: bytes) -> None:
        self._outbox.append(data)
        self._wake_writer()

    def _on_write_error(self, exc: OSError) -> None:
        logger.debug("%s: write failed: %s", self.name, exc)
        self._outbox.clear()
        self._done = True
        self._transport.interrupt()

    def _wake_writer(self) -> None:
        if self._transport is not None and self._outbox and self._writer is None:
            self._writer = gevent.spawn(self._write_all)

    def _write_all(self) -> None:
        # Frames queued while the previous write was under way leave together
        # in one write: under a burst of broadcasts that is one system call
        # (and a few TCP segments) per socket instead of one per message.
        try:
            while self._outbox:
                batch, self._outbox = self._outbox, []
                self._transport.send(batch[0] if len(batch) == 1 else b"".join(batch))
        except OSError as exc:
            self._on_write_error(exc)
        finally:
            self._writer = None
