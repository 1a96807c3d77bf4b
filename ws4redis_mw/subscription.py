"""The hub's subscription connection and the one greenlet that reads it.

Design rules of this module:

* One connection in subscribe mode per process, read by one greenlet.  What
  to subscribe to is the :class:`~ws4redis_mw.registry.Registry`'s to say;
  this module sends the commands, waits for Redis' confirmations and hands
  every message to ``on_message``.
* If the connection breaks (Redis restarted, network gone), the reader
  reconnects with capped exponential backoff plus jitter and subscribes again
  to every channel that is still wanted; sockets stay open meanwhile.  While
  it is down, :meth:`Subscription.wait_connected` answers at once (only a
  process's very first connection is waited for, up to ``CONNECT_TIMEOUT``).
* A quiet connection is checked with a ``PING`` every
  :data:`HEALTH_INTERVAL` seconds; no answer within as long again means it
  is dead.
* The reader yields to the other greenlets after every
  :data:`DISPATCH_BATCH` messages, so that a long burst from Redis is
  written to the sockets as it goes (and their backlogs stay small) instead of
  piling up until Redis has nothing more to say.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

import gevent
import gevent.event
import gevent.lock
from redis.connection import AbstractConnection
from redis.exceptions import TimeoutError as RedisTimeoutError

from .commands import CONNECT_TIMEOUT, CONNECTION_ERRORS, RedisUnavailable
from .connection import hub_connection
from .registry import Registry

__all__ = ["Subscription", "HEALTH_INTERVAL", "DISPATCH_BATCH"]

logger = logging.getLogger("ws4redis_mw.hub")

#: Seconds between PINGs on a quiet subscription connection.
HEALTH_INTERVAL = 15.0
#: First and largest wait, in seconds, between reconnection attempts.
BACKOFF_START, BACKOFF_MAX = 0.1, 5.0
#: Messages dispatched before the reader lets the sockets write them.
DISPATCH_BATCH = 64


class Subscription:
    def __init__(self, config: Union[Dict[str, Any], str], registry: Registry[Any], on_message: Callable[[str, bytes], None]):
        self._config = config
        self._registry = registry
        self._on_message = on_message
        self._conn: Optional[AbstractConnection] = None
        self._write_lock = gevent.lock.Semaphore()
        self._connected = gevent.event.Event()
        self._confirmations: Dict[str, gevent.event.Event] = {}
        self._reader: Optional[gevent.Greenlet[[], None]] = None
        self._stopped = False
        self._failed_once = False  # a connection attempt or connection has failed: don't make handshakes wait
        #: Counts (re)connections; the command connection follows it.
        self.generation = 0

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        if self._reader is None:
            self._reader = gevent.spawn(self._run)

    def stop(self) -> None:
        self._stopped = True
        if self._reader is not None:
            self._reader.kill(block=True, timeout=2)
        if self._conn is not None:
            self._conn.disconnect()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float = CONNECT_TIMEOUT) -> bool:
        """Wait for the first connection; once a try has failed, answer at once."""
        self.start()
        if self._failed_once and not self._connected.is_set():
            return False
        return self._connected.wait(timeout)

    # -- subscribing ---------------------------------------------------------

    def subscribe(self, channels: Iterable[str]) -> None:
        """Send ``SUBSCRIBE`` for ``channels`` (newly wanted); :meth:`wait_confirmed` waits for Redis."""
        channels = list(channels)
        for channel in channels:
            self._confirmations.setdefault(channel, gevent.event.Event())
        if channels:
            self._send("SUBSCRIBE", channels)

    def wait_confirmed(self, channels: Iterable[str], timeout: float) -> None:
        with gevent.Timeout(timeout, RedisUnavailable("Redis did not confirm the subscription")):
            for channel in channels:
                if not self._registry.is_subscribed(channel):
                    self._confirmations.setdefault(channel, gevent.event.Event()).wait()

    def unsubscribe(self, channels: Iterable[str]) -> None:
        """Send ``UNSUBSCRIBE`` for ``channels`` (no longer wanted), if connected."""
        channels = list(channels)
        for channel in channels:
            self._confirmations.pop(channel, None)
        if channels and self.connected:
            try:
                self._send("UNSUBSCRIBE", channels)
            except RedisUnavailable:
                pass  # the reconnect subscribes only to channels still wanted

    def _send(self, command: str, channels: List[str]) -> None:
        conn = self._conn
        if conn is None or not self.connected:
            raise RedisUnavailable("not connected to Redis")
        try:
            with self._write_lock:
                conn.send_command(command, *channels, check_health=False)
        except CONNECTION_ERRORS as exc:
            raise RedisUnavailable(str(exc)) from exc

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
            except CONNECTION_ERRORS as exc:
                if self.connected or backoff == BACKOFF_START:
                    logger.warning("Redis subscription connection lost: %s; reconnecting", exc)
            except Exception:  # never let the one reader die: every socket depends on it
                logger.exception("Redis subscription reader failed; reconnecting")
            finally:
                self._failed_once = True
                self._on_disconnected(conn)
            gevent.sleep(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _on_connected(self, conn: AbstractConnection) -> None:
        self._conn = conn
        self.generation += 1
        wanted = self._registry.wanted()
        for channel in wanted:
            self._confirmations.setdefault(channel, gevent.event.Event())
        if wanted:
            conn.send_command("SUBSCRIBE", *wanted, check_health=False)
        self._connected.set()
        logger.info("Redis subscription connection up (%d channels)", len(wanted))

    def _on_disconnected(self, conn: AbstractConnection) -> None:
        self._connected.clear()
        self._conn = None
        self._registry.connection_lost()
        conn.disconnect()

    def _read_forever(self, conn: AbstractConnection) -> None:
        ping_sent = False
        dispatched = 0
        while True:
            if not conn.can_read(timeout=HEALTH_INTERVAL):
                if ping_sent:
                    raise RedisTimeoutError("no answer to PING")
                with self._write_lock:
                    conn.send_command("PING", check_health=False)
                ping_sent = True
                continue
            reply = conn.read_response()
            ping_sent = False
            kind = reply[0]
            if kind == b"message":
                self._on_message(reply[1].decode("utf-8", "replace"), reply[2])
                dispatched += 1
                if dispatched >= DISPATCH_BATCH:
                    dispatched = 0
                    gevent.sleep(0)
            elif kind == b"subscribe":
                channel = reply[1].decode("utf-8", "replace")
                self._registry.confirm(channel)
                event = self._confirmations.pop(channel, None)
                if event is not None:
                    event.set()
