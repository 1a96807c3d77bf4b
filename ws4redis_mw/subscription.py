"""The hub's subscription connection and the one greenlet that reads it.

Design rules of this module:

* One connection in subscribe mode per process, read by one greenlet.  What
  to subscribe to is the :class:`~ws4redis_mw.registry.Registry`'s to say;
  this module sends the commands, waits for Redis' confirmations and hands
  every message to ``on_message``.
* A connection counts as up only once Redis has answered on it: right after
  connecting, ``SUBSCRIBE`` to every channel still wanted and a ``PING`` go
  out in one write, and the connection is up when the ``PONG`` is back (so
  every channel is subscribed again after one round trip, before anything
  else is sent, and a Redis that accepts connections but does not answer,
  such as a stopped process, is not taken for up).
* If the connection breaks (Redis restarted, network gone), the reader
  reconnects with capped exponential backoff plus jitter; sockets stay open
  meanwhile.  The backoff is capped at :data:`BACKOFF_MAX` while nobody needs
  Redis and at :data:`BACKOFF_MAX_WANTED` while sockets are open, and a
  handshake that finds Redis down starts an attempt at once
  (:meth:`Subscription.wait_connected`, waiting at most :data:`KICK_WAIT` for
  its outcome): the first handshake after Redis is back is accepted.
* :meth:`Subscription.wait_connected` waits for the outcome of the first
  attempt (at most the timeout); after a failure it answers within
  :data:`KICK_WAIT`.
* A quiet connection is sent a ``PING`` after ``health_interval`` seconds of
  silence; no answer within ``timeout`` more means Redis is gone.
* With ``sharded=True`` (a Redis Cluster master, :mod:`ws4redis_mw.cluster`)
  the commands are ``SSUBSCRIBE``/``SUNSUBSCRIBE``, one per hash slot (Redis
  refuses channels of several slots in one), and messages come as
  ``smessage``; the classic path tests ``message`` first, so it costs a
  delivery nothing.  A ``sunsubscribe`` we did not ask for (its channel is
  still subscribed in the registry) means Redis gave the channel's slot to
  another node (a failover, a resharding): the connection is dropped as if
  lost (:class:`SlotMoved`), so the cluster reads its slot map at once.
* The reader yields to the other greenlets after every
  :data:`DISPATCH_BATCH` messages, so that a long burst from Redis is
  written to the sockets as it goes (and their backlogs stay small) instead of
  piling up until Redis has nothing more to say.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Tuple, Union

import gevent
import gevent.event
import gevent.lock
from redis.connection import AbstractConnection
from redis.crc import key_slot
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .commands import CONNECT_TIMEOUT, CONNECTION_ERRORS, RedisUnavailable
from .connection import hub_connection

__all__ = ["Subscription", "WantedChannels", "SlotMoved", "HEALTH_INTERVAL", "DISPATCH_BATCH"]

logger = logging.getLogger("ws4redis_mw.hub")

#: Default seconds of silence before a PING on the subscription connection.
HEALTH_INTERVAL = 2.0
#: First and largest wait, in seconds, between reconnection attempts; the
#: largest while sockets are open and waiting for Redis.
BACKOFF_START, BACKOFF_MAX, BACKOFF_MAX_WANTED = 0.1, 5.0, 0.5
#: Seconds a handshake that finds Redis down waits for the attempt it starts.
KICK_WAIT = 0.25
#: Least seconds between two attempts started by handshakes.
KICK_GAP = 0.02
#: Messages dispatched before the reader lets the sockets write them.
DISPATCH_BATCH = 64


class SlotMoved(Exception):
    """Redis ended a sharded subscription by itself: the channel's slot is served elsewhere now."""


class WantedChannels(Protocol):
    """What a subscription needs of the :class:`~ws4redis_mw.registry.Registry` (or of a cluster node's share of it)."""

    def wanted(self) -> List[str]: ...

    def confirm(self, channel: str) -> None: ...

    def is_subscribed(self, channel: str) -> bool: ...

    def connection_lost(self) -> None: ...

    def __len__(self) -> int: ...


class Subscription:
    def __init__(self, config: Union[Dict[str, Any], str], registry: WantedChannels, on_message: Callable[[str, bytes], None],
                 *, timeout: float = CONNECT_TIMEOUT, health_interval: float = HEALTH_INTERVAL,
                 on_up: Optional[Callable[[bool], None]] = None, on_lost: Optional[Callable[[], None]] = None,
                 sharded: bool = False):
        self._config = config
        self._sharded = sharded
        self._subscribe_command, self._unsubscribe_command = ("SSUBSCRIBE", "SUNSUBSCRIBE") if sharded else ("SUBSCRIBE", "UNSUBSCRIBE")
        self._registry = registry
        self._on_message = on_message
        self._timeout = timeout
        self._health_interval = health_interval
        self._on_up = on_up
        self._on_lost = on_lost
        self._conn: Optional[AbstractConnection] = None
        self._write_lock = gevent.lock.Semaphore()
        self._connected = gevent.event.Event()
        self._confirmations: Dict[str, gevent.event.Event] = {}
        self._reader: Optional[gevent.Greenlet[[], None]] = None
        self._stopped = False
        self._failed_once = False  # a connection attempt or connection has failed: don't make handshakes wait
        self._kick = gevent.event.Event()  # cuts the backoff short
        self._moving = False  # reconnect() closed the connection under the reader
        self._settled = 0  # attempts that have come to an outcome
        self._settle_event = gevent.event.Event()
        #: Counts (re)connections; the command connection follows it.
        self.generation = 0
        #: ``time.monotonic()`` when the last reply was read (a message, a confirmation, a PONG).
        self.last_heard = 0.0

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

    @property
    def address(self) -> Optional[Tuple[str, int]]:
        """The (host, port) of the connection while connected over TCP."""
        conn = self._conn
        return (conn.host, conn.port) if conn is not None and self.connected and hasattr(conn, "port") else None

    def reconnect(self) -> None:
        """Drop the connection (the reader reconnects at once): Redis moved, say after a failover."""
        conn = self._conn
        if conn is not None:
            self._moving = True
            conn.disconnect()

    def wait_connected(self, timeout: float = CONNECT_TIMEOUT) -> bool:
        """Whether connected: the first attempt is waited for (at most ``timeout``);
        after a failure an attempt is started at once and waited for at most :data:`KICK_WAIT`."""
        if self._connected.is_set():
            return True
        self.start()
        if self._failed_once:
            self._kick.set()
            timeout = min(timeout, KICK_WAIT)
        target = self._settled + 1
        # False: the timeout ends the block silently.
        with gevent.Timeout(timeout, False):  # type: ignore[arg-type]
            while self._settled < target and not self._connected.is_set():
                self._settle_event.wait()
        return self._connected.is_set()

    def _settle(self) -> None:
        self._settled += 1
        event, self._settle_event = self._settle_event, gevent.event.Event()
        event.set()

    # -- subscribing ---------------------------------------------------------

    def subscribe(self, channels: Iterable[str]) -> None:
        """Send ``SUBSCRIBE`` for ``channels`` (newly wanted); :meth:`wait_confirmed` waits for Redis."""
        channels = list(channels)
        for channel in channels:
            self._confirmations.setdefault(channel, gevent.event.Event())
        if channels:
            self._send(self._commands(self._subscribe_command, channels))

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
                self._send(self._commands(self._unsubscribe_command, channels))
            except RedisUnavailable:
                pass  # the reconnect subscribes only to channels still wanted

    def _commands(self, command: str, channels: List[str]) -> List[Tuple[Any, ...]]:
        """``command`` for ``channels``: one command, or under a cluster one per hash slot."""
        if not self._sharded:
            return [(command, *channels)]
        slots: Dict[int, List[str]] = {}
        for channel in channels:
            slots.setdefault(key_slot(channel.encode("utf-8")), []).append(channel)
        return [(command, *group) for group in slots.values()]

    def _send(self, commands: List[Tuple[Any, ...]]) -> None:
        conn = self._conn
        if conn is None or not self.connected:
            raise RedisUnavailable("not connected to Redis")
        try:
            with self._write_lock:
                conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        except CONNECTION_ERRORS as exc:
            raise RedisUnavailable(str(exc)) from exc

    # -- the reader greenlet -------------------------------------------------

    def _run(self) -> None:
        backoff = BACKOFF_START
        while not self._stopped:
            conn = hub_connection(self._config, socket_timeout=self._timeout, socket_connect_timeout=self._timeout, protocol=2)
            was_up = False
            try:
                conn.connect()
                self._resubscribe(conn)
                was_up = True
                backoff = BACKOFF_START
                self._settle()
                if self._on_up is not None:
                    self._on_up(self.generation == 1)
                self._read_forever(conn)
            except CONNECTION_ERRORS as exc:
                if was_up or backoff == BACKOFF_START:
                    logger.warning("Redis subscription connection lost: %s; reconnecting", exc)
            except (ResponseError, SlotMoved) as exc:  # under a cluster: MOVED or sunsubscribe, the slot has another master now
                logger.warning("Redis refused or ended a subscription: %s; reconnecting", exc)
            except Exception:  # never let the one reader die: every socket depends on it
                if not self._moving:
                    logger.exception("Redis subscription reader failed; reconnecting")
            finally:
                self._moving = False
                self._failed_once = True
                self._on_disconnected(conn)
                self._settle()
            if was_up and self._on_lost is not None:
                self._on_lost()
            cap = BACKOFF_MAX_WANTED if len(self._registry) else BACKOFF_MAX
            backoff = min(backoff, cap)
            self._kick.clear()
            if self._kick.wait(random.uniform(backoff / 2, backoff)):
                gevent.sleep(KICK_GAP)  # a flood of handshakes makes at most one attempt per KICK_GAP
            backoff = min(backoff * 2, cap)

    def _resubscribe(self, conn: AbstractConnection) -> None:
        """SUBSCRIBE to every wanted channel and PING, in one write; up once the PONG is back."""
        wanted = self._registry.wanted()
        for channel in wanted:
            self._confirmations.setdefault(channel, gevent.event.Event())
        commands = self._commands(self._subscribe_command, wanted) if wanted else []
        conn.send_packed_command(conn.pack_commands([*commands, ("PING",)]), check_health=False)
        while not self._handle(conn.read_response()):
            pass
        self.last_heard = time.monotonic()
        self._conn = conn
        self.generation += 1
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
            if not conn.can_read(timeout=self._timeout if ping_sent else self._health_interval):
                if ping_sent:
                    raise RedisTimeoutError(f"no answer to PING within {self._timeout} s")
                with self._write_lock:
                    conn.send_command("PING", check_health=False)
                ping_sent = True
                continue
            reply = conn.read_response()
            self.last_heard = time.monotonic()
            ping_sent = False
            if self._handle(reply) is None:
                dispatched += 1
                if dispatched >= DISPATCH_BATCH:
                    dispatched = 0
                    gevent.sleep(0)

    def _handle(self, reply: Any) -> Optional[bool]:
        """Act on one reply: ``None`` for a message, ``True`` for a PONG, else ``False``."""
        if not isinstance(reply, list):
            return bool(reply == b"PONG")  # PING outside subscribe mode (nothing subscribed yet)
        kind = reply[0]
        if kind == b"message" or kind == b"smessage":
            self._on_message(reply[1].decode("utf-8", "replace"), reply[2])
            return None
        if kind == b"sunsubscribe" and self._registry.is_subscribed(reply[1].decode("utf-8", "replace")):
            raise SlotMoved(f"Redis unsubscribed {reply[1].decode('utf-8', 'replace')}: its slot moved to another node")
        if kind == b"subscribe" or kind == b"ssubscribe":
            channel = reply[1].decode("utf-8", "replace")
            self._registry.confirm(channel)
            event = self._confirmations.pop(channel, None)
            if event is not None:
                event.set()
            return False
        return bool(kind == b"pong")
