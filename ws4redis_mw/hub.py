"""The per-process Redis hub: one subscription connection shared by every socket.

Design rules of this module:

* A process has one :class:`Hub` (:func:`get_hub`), created on the first
  websocket, in the thread and gevent loop that serves the sockets.  It holds
  at most two Redis connections: one in subscribe mode, read by one greenlet,
  and one for commands (``PUBLISH`` + ``SET EX``, ``MGET`` of kept messages),
  written by one flusher greenlet that pipelines whatever is queued.  The publisher Django code calls has its own pool.
* A channel is subscribed in Redis while at least one local listener wants it:
  the first :meth:`Hub.attach` for a channel sends ``SUBSCRIBE`` and waits for
  Redis to confirm it, so that a message published once ``attach`` has
  returned is never missed; the last :meth:`Hub.detach` sends ``UNSUBSCRIBE``.
* A message from Redis is encoded into a websocket frame once, and the same
  bytes are handed to every local listener of its channel.  Listeners'
  ``deliver`` must not block: they queue.
* If the subscription connection breaks (Redis restarted, network gone), the
  reader reconnects with capped exponential backoff plus jitter and
  subscribes again to every channel that still has listeners; sockets stay
  open meanwhile.  While it is down, :meth:`Hub.attach` and
  :meth:`Hub.publish` raise :class:`RedisUnavailable` at once rather than
  hang (only a process's very first attach waits, up to
  :data:`CONNECT_TIMEOUT`, for the first connection).
"""

from __future__ import annotations

import logging
import os
import random
from typing import Dict, Iterable, List, Optional, Protocol, Set, Union

import gevent
import gevent.event
import gevent.lock
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError, TimeoutError as RedisTimeoutError

from . import frames
from .connection import hub_connection

__all__ = ["Listener", "Hub", "RedisUnavailable", "get_hub", "process_stats", "close_all_websockets"]

logger = logging.getLogger("ws4redis_mw.hub")

#: Seconds between PINGs on a quiet subscription connection; a PING left
#: unanswered for as long again means the connection is dead.
HEALTH_INTERVAL = 15.0
#: First and largest wait, in seconds, between reconnection attempts.
BACKOFF_START, BACKOFF_MAX = 0.1, 5.0
#: Seconds to wait for Redis to connect or to confirm a subscription.
CONNECT_TIMEOUT = 3.0

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisUnavailable(Exception):
    """Redis cannot be reached right now."""


class Listener(Protocol):
    def deliver(self, channel: str, payload: bytes, frame: bytes) -> None:
        """Queue a message; must not block."""

    def server_close(self, code: int, reason: str) -> None:
        """Close the socket from the server side (shutdown)."""


class Hub:
    def __init__(self, config: Union[dict, str]):
        self._config = config
        self._listeners: Dict[str, Set[Listener]] = {}
        self._attached: Dict[Listener, List[str]] = {}  # listener -> its channels
        self._subscribed: Set[str] = set()
        self._confirmations: Dict[str, gevent.event.Event] = {}
        self._sub_conn = None
        self._sub_write = gevent.lock.Semaphore()
        self._connected = gevent.event.Event()
        self._generation = 0  # counts (re)connections of the subscription
        self._cmd_conn = None
        self._cmd_generation = -1
        self._queue: List[tuple] = []  # (commands, AsyncResult) waiting for the flusher
        self._flusher: Optional[gevent.Greenlet] = None
        self._reader: Optional[gevent.Greenlet] = None
        self._stopped = False
        self._failed_once = False  # a connection attempt or connection has failed: don't make handshakes wait

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        if self._reader is None:
            self._reader = gevent.spawn(self._run)

    def wait_connected(self, timeout: float = CONNECT_TIMEOUT) -> bool:
        """Wait for the first connection; once a try has failed, answer at once."""
        self.start()
        if self._failed_once and not self._connected.is_set():
            return False
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self) -> None:
        """Stop the reader and close both connections (tests, shutdown)."""
        self._stopped = True
        if self._reader is not None:
            self._reader.kill(block=True, timeout=2)
        for conn in (self._sub_conn, self._cmd_conn):
            if conn is not None:
                conn.disconnect()
        self._connected.clear()

    def close_all(self, code: int = 1001, reason: str = "server shutting down") -> int:
        """Close every local socket with ``code``; returns how many there were."""
        listeners = list(self._attached)
        for listener in listeners:
            listener.server_close(code, reason)
        return len(listeners)

    def stats(self) -> dict:
        return {"connected": self.connected, "channels": len(self._listeners), "listeners": len(self._attached)}

    # -- subscriptions -------------------------------------------------------

    def attach(self, listener: Listener, channels: Iterable[str], timeout: float = CONNECT_TIMEOUT) -> List[Optional[bytes]]:
        """Subscribe ``listener`` to ``channels``; return each channel's kept message (or ``None``).

        Returns once Redis has confirmed every subscription.  Raises
        :class:`RedisUnavailable` (with nothing left attached) if Redis is down
        or does not confirm within ``timeout`` seconds.
        """
        channels = list(dict.fromkeys(channels))
        if not self.wait_connected(timeout):
            raise RedisUnavailable("not connected to Redis")
        self._attached[listener] = channels
        to_subscribe, waits = [], []
        for channel in channels:
            self._listeners.setdefault(channel, set()).add(listener)
            if channel in self._subscribed:
                continue
            event = self._confirmations.get(channel)
            if event is None:
                event = self._confirmations[channel] = gevent.event.Event()
                to_subscribe.append(channel)
            waits.append(event)
        try:
            if to_subscribe:
                self._send_subscription("SUBSCRIBE", to_subscribe)
            with gevent.Timeout(timeout, RedisUnavailable("Redis did not confirm the subscription")):
                for event in waits:
                    event.wait()
            return self.kept_messages(channels) if channels else []
        except BaseException:
            self.detach(listener)
            raise

    def detach(self, listener: Listener) -> None:
        """Remove ``listener`` everywhere; unsubscribe channels nobody wants any more."""
        gone = []
        for channel in self._attached.pop(listener, ()):
            group = self._listeners.get(channel)
            if group is None:
                continue
            group.discard(listener)
            if not group:
                del self._listeners[channel]
                self._subscribed.discard(channel)
                self._confirmations.pop(channel, None)
                gone.append(channel)
        if gone and self.connected:
            try:
                self._send_subscription("UNSUBSCRIBE", gone)
            except RedisUnavailable:
                pass  # the reconnect subscribes only to channels still wanted

    def _send_subscription(self, command: str, channels: List[str]) -> None:
        conn = self._sub_conn
        if conn is None or not self.connected:
            raise RedisUnavailable("not connected to Redis")
        try:
            with self._sub_write:
                conn.send_command(command, *channels, check_health=False)
        except _CONNECTION_ERRORS as exc:
            raise RedisUnavailable(str(exc)) from exc

    # -- commands ------------------------------------------------------------

    def publish(self, channels: Iterable[str], payload: bytes, expire: int) -> None:
        """Publish ``payload`` to ``channels`` and keep it ``expire`` seconds, in one round trip."""
        commands = []
        for channel in channels:
            commands.append(("PUBLISH", channel, payload))
            if expire > 0:
                commands.append(("SET", channel, payload, "EX", expire))
        if commands:
            self._command(commands)

    def kept_messages(self, channels: List[str]) -> List[Optional[bytes]]:
        """The kept message of each channel, ``None`` where there is none."""
        (values,) = self._command([("MGET", *channels)])
        return list(values)

    def _command(self, commands: List[tuple]) -> list:
        """Run ``commands`` on the command connection; raise the first error reply.

        Callers queue their commands; one flusher greenlet sends everything
        queued at that moment in one write and reads the replies back in
        order.  Concurrent publishes from many sockets thus share round
        trips instead of queueing behind each other's.
        """
        if not self.connected:
            raise RedisUnavailable("not connected to Redis")
        result = gevent.event.AsyncResult()
        self._queue.append((commands, result))
        if self._flusher is None:
            self._flusher = gevent.spawn(self._flush)
        replies = result.get()
        for reply in replies:
            if isinstance(reply, RedisError):
                raise reply
        return replies

    def _flush(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                commands = [command for own, _ in batch for command in own]
                try:
                    replies = self._round_trip(commands)
                except _CONNECTION_ERRORS as exc:
                    self._drop_command_connection()
                    error = RedisUnavailable(str(exc))
                    for _, result in batch:
                        result.set_exception(error)
                    continue
                start = 0
                for own, result in batch:
                    result.set(replies[start:start + len(own)])
                    start += len(own)
        finally:
            self._flusher = None

    def _round_trip(self, commands: List[tuple]) -> list:
        conn = self._command_connection()
        conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        replies = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except ResponseError as error:  # an error reply; the next replies still follow
                replies.append(error)
        return replies

    def _command_connection(self):
        # A connection older than the subscription's last reconnect may point
        # at a Redis that has restarted since: replace it rather than find out
        # by losing a publish.
        if self._cmd_conn is None or self._cmd_generation != self._generation:
            self._drop_command_connection()
            self._cmd_conn = hub_connection(self._config, socket_timeout=CONNECT_TIMEOUT, socket_connect_timeout=CONNECT_TIMEOUT, protocol=2)
            self._cmd_conn.connect()
            self._cmd_generation = self._generation
        return self._cmd_conn

    def _drop_command_connection(self) -> None:
        if self._cmd_conn is not None:
            self._cmd_conn.disconnect()
            self._cmd_conn = None

    # -- the reader greenlet -------------------------------------------------

    def _run(self) -> None:
        backoff = BACKOFF_START
        while not self._stopped:
            conn = hub_connection(self._config, socket_timeout=None, socket_connect_timeout=CONNECT_TIMEOUT, protocol=2)
            try:
                conn.connect()
                self._on_connected(conn)
                backoff = BACKOFF_START
                self._read_forever(conn)
            except _CONNECTION_ERRORS as exc:
                if self.connected or backoff == BACKOFF_START:
                    logger.warning("Redis subscription connection lost: %s; reconnecting", exc)
            except Exception:  # never let the one reader die: every socket depends on it
                logger.exception("Redis subscription reader failed; reconnecting")
            finally:
                self._failed_once = True
                self._on_disconnected(conn)
            gevent.sleep(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _on_connected(self, conn) -> None:
        self._sub_conn = conn
        self._generation += 1
        wanted = list(self._listeners)
        for channel in wanted:
            self._confirmations.setdefault(channel, gevent.event.Event())
        if wanted:
            conn.send_command("SUBSCRIBE", *wanted, check_health=False)
        self._connected.set()
        logger.info("Redis subscription connection up (%d channels)", len(wanted))

    def _on_disconnected(self, conn) -> None:
        self._connected.clear()
        self._sub_conn = None
        self._subscribed.clear()
        conn.disconnect()

    def _read_forever(self, conn) -> None:
        ping_sent = False
        while True:
            if not conn.can_read(timeout=HEALTH_INTERVAL):
                if ping_sent:
                    raise RedisTimeoutError("no answer to PING")
                with self._sub_write:
                    conn.send_command("PING", check_health=False)
                ping_sent = True
                continue
            reply = conn.read_response()
            ping_sent = False
            kind = reply[0]
            if kind == b"message":
                self._dispatch(reply[1].decode("utf-8", "replace"), reply[2])
            elif kind == b"subscribe":
                channel = reply[1].decode("utf-8", "replace")
                if channel in self._listeners:
                    self._subscribed.add(channel)
                event = self._confirmations.pop(channel, None)
                if event is not None:
                    event.set()

    def _dispatch(self, channel: str, payload: bytes) -> None:
        listeners = self._listeners.get(channel)
        if not listeners:
            return
        frame = frames.encode_message(payload)
        for listener in list(listeners):
            try:
                listener.deliver(channel, payload, frame)
            except Exception:  # one broken socket must not starve the others
                logger.exception("delivery to %r failed", listener)


_hubs: Dict[tuple, Hub] = {}


def get_hub(config: Union[dict, str]) -> Hub:
    """The hub of this process for ``config`` (a forked worker gets its own)."""
    key = (os.getpid(), repr(config))
    hub = _hubs.get(key)
    if hub is None:
        hub = _hubs[key] = Hub(config)
        hub.start()
    return hub


def process_stats() -> List[dict]:
    """:meth:`Hub.stats` of each hub of this process (for health checks and tests)."""
    pid = os.getpid()
    return [hub.stats() for key, hub in _hubs.items() if key[0] == pid]


def close_all_websockets(code: int = 1001, reason: str = "server shutting down") -> int:
    """Close every websocket of this process with ``code``; for shutdown and reload hooks."""
    pid = os.getpid()
    return sum(hub.close_all(code, reason) for key, hub in _hubs.items() if key[0] == pid)
