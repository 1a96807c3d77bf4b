"""The per-process hub: one Redis subscription, one command pipeline and one timer for every socket.

Design rules of this module:

* A process has one :class:`Hub` per Redis configuration (:func:`get_hub`),
  created on the first websocket, in the thread and gevent loop that serves
  the sockets.  It holds at most two Redis connections: the subscription
  (:mod:`ws4redis_mw.subscription`) and the command pipeline
  (:mod:`ws4redis_mw.commands`); who listens to what is the
  :class:`~ws4redis_mw.registry.Registry`'s.  The publisher Django code
  calls has its own pool.
* :meth:`Hub.attach` returns once Redis has confirmed every subscription of
  the socket, so a message published after it returned is never missed;
  :meth:`Hub.detach` unsubscribes what nobody wants any more.
* A message from Redis is encoded into a websocket frame once, and the same
  bytes are handed to every local listener of its channel.  Listeners queue
  it and ask :meth:`Hub.flush_soon`: the hub writes every socket that has
  something queued once the reader has dispatched all it had read (at most
  :data:`~ws4redis_mw.subscription.DISPATCH_BATCH` messages), so a steady
  stream costs one write per message and socket with no greenlet switch,
  and a burst still leaves in one write per socket.
* One timer greenlet ticks every :data:`TICK` seconds for every socket
  (heartbeats, pings, close timeouts), rather than a timer per socket.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Hashable, List, Optional, Protocol, Sequence, Tuple

import gevent
import gevent.event

from . import frames
from .commands import CONNECT_TIMEOUT, CommandPipeline, RedisUnavailable
from .registry import Registry
from .settings import Settings
from .subscription import Subscription

__all__ = ["Listener", "Hub", "RedisUnavailable", "get_hub", "process_hubs", "process_stats", "TICK"]

logger = logging.getLogger("ws4redis_mw.hub")

#: Seconds between two ticks of the process timer.
TICK = 1.0


class Listener(Hashable, Protocol):
    """What the hub needs of a socket (:class:`ws4redis_mw.websocket.WebSocket`); a key of the registry."""

    def deliver(self, channel: str, payload: bytes, frame: bytes) -> None:
        """Queue a message; must not block."""

    def flush(self) -> None:
        """Write what is queued without blocking (called from the event loop)."""

    def tick(self, now: float) -> None:
        """The process timer; must not block."""

    def server_close(self, code: frames.CloseCode, reason: str) -> None:
        """Close the socket from the server side; must not block."""


class Hub:
    def __init__(self, settings: Settings):
        self._registry: Registry[Listener] = Registry()
        self._subscription = Subscription(settings.connection, self._registry, self._dispatch)
        self._commands = CommandPipeline(settings.connection, lambda: self._subscription.generation)
        self._loop = gevent.get_hub().loop
        self._to_flush: List[Listener] = []
        self._flush_scheduled = False
        self._timer: Optional[gevent.Greenlet[[], None]] = None
        self._detached = gevent.event.Event()  # set at every detach, for wait_detached()

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        self._subscription.start()
        if self._timer is None:
            self._timer = gevent.spawn(self._tick_forever)

    def stop(self) -> None:
        """Stop the greenlets and close both connections (tests, shutdown)."""
        if self._timer is not None:
            self._timer.kill(block=True, timeout=2)
        self._subscription.stop()
        self._commands.close()

    @property
    def connected(self) -> bool:
        return self._subscription.connected

    def wait_connected(self, timeout: float = CONNECT_TIMEOUT) -> bool:
        return self._subscription.wait_connected(timeout)

    def close_all(self, code: frames.CloseCode = frames.CloseCode.GOING_AWAY, reason: str = "server shutting down") -> List[Listener]:
        """Start closing every local socket with ``code``; returns them."""
        listeners = self._registry.all_listeners()
        for listener in listeners:
            listener.server_close(code, reason)
        return listeners

    def wait_detached(self, listeners: Sequence[Listener], timeout: float) -> bool:
        """Wait until none of ``listeners`` is attached, at most ``timeout`` seconds; ``True`` if so."""
        # False: the timeout ends the block silently (gevent's documented
        # value, missing from types-gevent's signature).
        with gevent.Timeout(timeout, False):  # type: ignore[arg-type]
            while any(listener in self._registry for listener in listeners):
                self._detached.clear()
                self._detached.wait()
            return True
        return False

    @property
    def listener_count(self) -> int:
        return len(self._registry)

    def stats(self) -> Dict[str, Any]:
        return {"connected": self.connected, "channels": self._registry.channel_count, "listeners": len(self._registry)}

    # -- subscriptions -------------------------------------------------------

    def attach(self, listener: Listener, channels: Sequence[str], timeout: float = CONNECT_TIMEOUT) -> List[Optional[bytes]]:
        """Subscribe ``listener`` to ``channels``; return each channel's kept message (or ``None``).

        Raises :class:`RedisUnavailable` (with nothing left attached) if Redis
        is down or does not confirm within ``timeout`` seconds.
        """
        if not self._subscription.wait_connected(timeout):
            raise RedisUnavailable("not connected to Redis")
        new = self._registry.add(listener, channels)
        try:
            self._subscription.subscribe(new)
            self._subscription.wait_confirmed(channels, timeout)
            return self.kept_messages(channels) if channels else []
        except BaseException:
            self.detach(listener)
            raise

    def detach(self, listener: Listener) -> None:
        """Remove ``listener`` everywhere; unsubscribe channels nobody wants any more."""
        self._subscription.unsubscribe(self._registry.remove(listener))
        self._detached.set()

    # -- commands ------------------------------------------------------------

    def publish(self, channels: Sequence[str], payload: bytes, expire: int) -> None:
        """Publish ``payload`` to ``channels`` and keep it ``expire`` seconds, in one round trip."""
        commands: List[Tuple[Any, ...]] = []
        for channel in channels:
            commands.append(("PUBLISH", channel, payload))
            if expire > 0:
                commands.append(("SET", channel, payload, "EX", expire))
        if commands:
            self._execute(commands)

    def kept_messages(self, channels: Sequence[str]) -> List[Optional[bytes]]:
        """The kept message of each channel, ``None`` where there is none."""
        (values,) = self._execute([("MGET", *channels)])
        return list(values)

    def _execute(self, commands: List[Tuple[Any, ...]]) -> List[Any]:
        if not self.connected:
            raise RedisUnavailable("not connected to Redis")
        return self._commands.execute(commands)

    # -- delivery ------------------------------------------------------------

    def _dispatch(self, channel: str, payload: bytes) -> None:
        listeners = self._registry.listeners(channel)
        if not listeners:
            return
        frame = frames.encode_message(payload)
        for listener in list(listeners):
            try:
                listener.deliver(channel, payload, frame)
            except Exception:  # one broken socket must not starve the others
                logger.exception("delivery to %r failed", listener)

    def flush_soon(self, listener: Listener) -> None:
        """Have ``listener.flush()`` called once the running greenlet yields."""
        self._to_flush.append(listener)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.run_callback(self._flush_all)

    def _flush_all(self) -> None:
        self._flush_scheduled = False
        listeners, self._to_flush = self._to_flush, []
        for listener in listeners:
            try:
                listener.flush()
            except Exception:
                logger.exception("writing to %r failed", listener)

    def _tick_forever(self) -> None:
        while True:
            gevent.sleep(TICK)
            now = self._loop.now()
            for listener in self._registry.all_listeners():
                try:
                    listener.tick(now)
                except Exception:
                    logger.exception("timer of %r failed", listener)


_hubs: Dict[Tuple[int, str], Hub] = {}


def get_hub(settings: Settings) -> Hub:
    """The hub of this process for ``settings.connection`` (a forked worker gets its own)."""
    key = (os.getpid(), repr(settings.connection))
    hub = _hubs.get(key)
    if hub is None:
        hub = _hubs[key] = Hub(settings)
        hub.start()
    return hub


def process_hubs() -> List[Hub]:
    """The hubs of this process (not those inherited from a parent before a fork)."""
    pid = os.getpid()
    return [hub for key, hub in _hubs.items() if key[0] == pid]


def process_stats() -> List[Dict[str, Any]]:
    """:meth:`Hub.stats` of each hub of this process (for health checks and tests)."""
    return [hub.stats() for hub in process_hubs()]
