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
* What happens is counted in :data:`ws4redis_mw.counters.METRICS` once per
  Redis message, never per socket.  Each gap in the subscription (lost, then
  subscribed again) is measured against Redis' own count of ``PUBLISH``
  commands (``INFO commandstats``, read every :data:`~ws4redis_mw.gaps.SNAPSHOT_INTERVAL`
  seconds while subscribed, by the timer, never on the delivery path): the
  count after resubscribing minus the last reading known to predate the
  loss (read before the subscription last heard from Redis) is an upper
  bound of the messages this process may have missed; if Redis restarted
  meanwhile (another ``run_id``), its whole count (:func:`ws4redis_mw.gaps.possibly_missed`,
  free of I/O).
* Under Redis Sentinel both connections move to a new master as soon as the
  sentinels announce it (``+switch-master``, :mod:`ws4redis_mw.sentinel`),
  or at the latest when the timer next asks them (every
  ``redis_health_interval`` seconds): Sentinel reconfigures the old master
  only later, and until then a subscription there hears nothing.
* Under Redis Cluster the subscription and the command pipeline are their
  cluster forms (:mod:`ws4redis_mw.cluster`: one sharded subscription and
  one pipeline per master), publications use ``SPUBLISH``, and the gap
  measurement is kept per master (one master's count says nothing of
  another's): each master's count is read on its own command connection
  while its subscription is up, and a gap of one master's subscription is
  measured on that master alone.  A master new in a replaced slot map (a
  promoted replica) counts with its whole count, or the difference from a
  reading of the same ``run_id`` if it was a master before (a replica counts
  none of its master's publications); a master that left the map is read
  once more when it leaves, if it answers.  The classic path is the same
  code as without a cluster.  While a gap is
  healed only the channels of the master(s) whose subscription was lost
  are held back: a dead master must not stall the others' channels until
  its replica takes over.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from typing import Any, Collection, Deque, Dict, Hashable, List, Optional, Protocol, Sequence, Set, Tuple, Union

import gevent
import gevent.event
from redis.exceptions import RedisError

from . import control, frames, history
from .cluster import ClusterCommands, ClusterSubscription
from .commands import CommandPipeline, RedisUnavailable
from .connection import discover_master, is_cluster, is_sentinel, sentinel_config
from .counters import METRICS
from .gaps import PublishCount, Reading, possibly_missed
from .registry import Registry
from .sentinel import SentinelWatcher
from .settings import Settings
from .subscription import Subscription

__all__ = ["Listener", "Hub", "RedisUnavailable", "get_hub", "process_hubs", "process_stats", "TICK"]

logger = logging.getLogger("ws4redis_mw.hub")

#: Seconds between two ticks of the process timer.
TICK = 1.0
#: Host and port of a cluster master.
Address = Tuple[str, int]


class Listener(Hashable, Protocol):
    """What the hub needs of a socket (:class:`ws4redis_mw.websocket.WebSocket`); a key of the registry."""

    def deliver(self, publication: history.Publication) -> None:
        """Queue a message; must not block."""

    def flush(self) -> None:
        """Write what is queued without blocking (called from the event loop)."""

    def tick(self, now: float) -> None:
        """The process timer; must not block."""

    def server_close(self, code: frames.CloseCode, reason: str) -> None:
        """Close the socket from the server side; must not block."""

    @property
    def backlog(self) -> int:
        """Bytes queued for the client that the kernel has not taken."""


class Hub:
    def __init__(self, settings: Settings):
        self._timeout = settings.redis_timeout
        self._control = control.control_channel(settings.prefix)
        self._registry: Registry[Listener] = Registry(pinned=[self._control])
        self._identities: Dict[Listener, control.Identity] = {}  # whom disconnect orders may close
        self._cluster = is_cluster(settings.connection)
        self._subscription: Union[Subscription, ClusterSubscription]
        self._commands: Union[CommandPipeline, ClusterCommands]
        if self._cluster:
            cluster = ClusterSubscription(settings.connection, self._registry, self._dispatch, timeout=settings.redis_timeout,
                                          health_interval=settings.redis_health_interval,
                                          on_up=self._on_redis_up, on_lost=self._on_redis_lost)
            self._subscription = cluster
            self._commands = ClusterCommands(settings.connection, cluster, timeout=settings.redis_timeout)
        else:
            self._subscription = Subscription(settings.connection, self._registry, self._dispatch, timeout=settings.redis_timeout,
                                              health_interval=settings.redis_health_interval,
                                              on_up=self._on_redis_up, on_lost=self._on_redis_lost)
            self._commands = CommandPipeline(settings.connection, lambda: self._subscription.generation,
                                             timeout=settings.redis_timeout)
        self._publish_command = "SPUBLISH" if self._cluster else "PUBLISH"
        self._counts: Dict[Optional[Address], PublishCount] = {}  # per master under a cluster, else at None
        self._health_interval = settings.redis_health_interval
        self._sentinel = sentinel_config(settings.connection) if is_sentinel(settings.connection) else None
        self._master_checked = 0.0
        self._watcher: Optional[SentinelWatcher] = None
        if self._sentinel is not None:
            sentinels, service_name, _, sentinel_kwargs = self._sentinel
            self._watcher = SentinelWatcher(sentinels, service_name, sentinel_kwargs, settings.redis_timeout,
                                            self._master_switched)
        self._loop = gevent.get_hub().loop
        self._to_flush: List[Listener] = []
        self._flush_scheduled = False
        self._timer: Optional[gevent.Greenlet[[], None]] = None
        self._detached = gevent.event.Event()  # set at every detach, for wait_detached()
        self._prefix = settings.prefix
        self._policy = history.policy_for(settings)
        self._max_recover = settings.max_recover
        self._histories: Dict[str, _ChannelMemory] = {}  # history channel -> what this process delivered of it
        self._reads: Dict[Tuple[str, Optional[int]], "gevent.event.AsyncResult[history.View]"] = {}
        self._healing: Optional[List[Tuple[str, bytes]]] = None  # messages held back while a gap is healed
        self._gap_channels: Set[str] = set()  # under a cluster: the channels whose messages are held back
        self._healed = gevent.event.Event()
        self._healed.set()
        self._heal_generation = 0

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        self._subscription.start()
        if self._watcher is not None:
            self._watcher.start()
        if self._timer is None:
            self._timer = gevent.spawn(self._tick_forever)

    def stop(self) -> None:
        """Stop the greenlets and close both connections (tests, shutdown)."""
        if self._timer is not None:
            self._timer.kill(block=True, timeout=2)
        if self._watcher is not None:
            self._watcher.stop()
        self._subscription.stop()
        self._commands.close()

    @property
    def connected(self) -> bool:
        return self._subscription.connected

    def wait_connected(self, timeout: Optional[float] = None) -> bool:
        return self._subscription.wait_connected(self._timeout if timeout is None else timeout)

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

    @property
    def channel_count(self) -> int:
        return self._registry.channel_count

    def backlog_bytes(self) -> int:
        """Bytes queued for every local socket that the kernel has not taken."""
        return sum(listener.backlog for listener in self._registry.all_listeners())

    def stats(self) -> Dict[str, Any]:
        return {"connected": self.connected, "channels": self._registry.channel_count, "listeners": len(self._registry),
                "backlog_bytes": self.backlog_bytes()}

    # -- subscriptions -------------------------------------------------------

    def attach(self, listener: Listener, channels: Sequence[str], timeout: Optional[float] = None,
               identity: Optional[control.Identity] = None) -> List[Optional[bytes]]:
        """Subscribe ``listener`` to ``channels``; return each channel's kept message (or ``None``).

        ``identity`` is whom :func:`ws4redis_mw.disconnect` orders name to close it.

        Raises :class:`RedisUnavailable` (with nothing left attached) if Redis
        is down or does not confirm within ``timeout`` seconds (default
        ``WS4REDIS_REDIS_TIMEOUT``).
        """
        if timeout is None:
            timeout = self._timeout
        if isinstance(self._subscription, ClusterSubscription):
            connected = self._subscription.wait_connected(timeout, channels)  # the masters of these channels only
        else:
            connected = self._subscription.wait_connected(timeout)
        if not connected:
            raise RedisUnavailable("not connected to Redis")
        new = self._registry.add(listener, channels)
        if identity is not None:
            self._identities[listener] = identity
        try:
            self._subscription.subscribe(new)
            self._subscription.wait_confirmed(channels, timeout)
            kept = self.kept_messages(channels) if channels else []
        except BaseException:
            self.detach(listener)
            raise
        METRICS.handshakes_accepted += 1
        return kept

    def detach(self, listener: Listener) -> None:
        """Remove ``listener`` everywhere; unsubscribe channels nobody wants any more."""
        gone = self._registry.remove(listener)
        self._identities.pop(listener, None)
        for channel in gone:
            self._histories.pop(channel, None)
        self._subscription.unsubscribe(gone)
        self._detached.set()

    # -- commands ------------------------------------------------------------

    def publish(self, channels: Sequence[str], payload: bytes, expire: int, keep_history: bool = True) -> None:
        """Publish ``payload`` to ``channels`` and keep it ``expire`` seconds, in one round trip.

        ``keep_history`` false: not in the channels' history either (an anonymous publisher's).
        """
        commands: List[Tuple[Any, ...]] = []
        policy = self._policy
        for channel in channels:
            config = policy.for_channel(channel) if policy.enabled and keep_history else None
            if config is not None:
                commands.append(("EVAL", history.PUBLISH_SCRIPT,
                                 *history.publish_args(channel, self._prefix, config, payload, expire, self._cluster)))
                continue
            commands.append((self._publish_command, channel, payload))
            if expire > 0:
                commands.append(("SET", channel, payload, "EX", expire))
        if commands:
            try:
                self._execute(commands)
            except RedisUnavailable:
                METRICS.publish_failures["socket"] += 1
                raise
            METRICS.published["socket"] += len(channels)

    def kept_messages(self, channels: Sequence[str]) -> List[Optional[bytes]]:
        """The kept message of each channel, ``None`` where there is none."""
        (values,) = self._execute([("MGET", *channels)])
        return list(values)

    # -- history -------------------------------------------------------------

    def has_history(self, channel: str) -> bool:
        return self._policy.enabled and self._policy.for_channel(channel) is not None

    def history_views(self, positions: Dict[str, Optional[history.Position]]) -> Dict[str, history.View]:
        """For each history channel, what is known of it for a client at that position (``None``: none).

        Served from this process's memory of the channel when it covers the
        position; otherwise read from Redis, in one round trip for all, and a
        read already under way for the same channel and offset is shared.
        """
        if not self._healed.wait(self._timeout):
            raise RedisUnavailable("the history is being healed")
        views: Dict[str, history.View] = {}
        reads: Dict[str, Optional[int]] = {}
        for channel, position in positions.items():
            memory = self._histories.get(channel)
            since = None if position is None or position.epoch not in ("", memory.epoch if memory else position.epoch) else position.offset
            if memory is not None and memory.epoch is not None and (since is None or memory.covers(since)):
                views[channel] = memory.view()
            else:
                reads[channel] = since
        if reads:
            try:
                views.update(self._read_histories(reads))
            except (RedisError, OSError) as exc:
                # An error reply (a RedisError) or a broken connection means
                # "not now" to the client (503 or 1013), never a 500.
                raise RedisUnavailable(f"history read failed: {exc!r}") from exc
        return views

    def _read_histories(self, reads: Dict[str, Optional[int]]) -> Dict[str, history.View]:
        mine: Dict[str, "gevent.event.AsyncResult[history.View]"] = {}
        waiting: Dict[str, "gevent.event.AsyncResult[history.View]"] = {}
        for channel, since in reads.items():
            known = self._reads.get((channel, since))
            if known is not None:
                waiting[channel] = known
            else:
                mine[channel] = self._reads[(channel, since)] = gevent.event.AsyncResult()
        try:
            if mine:
                commands: List[Tuple[Any, ...]] = []
                for channel in mine:
                    commands.append(("HMGET", history.meta_key(channel, self._prefix), "epoch", "offset"))
                    since = reads[channel]
                    if since is not None:
                        commands.append(("XRANGE", history.stream_key(channel, self._prefix), f"{since + 1}-0", "+",
                                         "COUNT", self._max_recover + 1))
                replies = iter(self._execute(commands))
                for channel, result in mine.items():
                    epoch, top = next(replies)
                    entries = _entries(next(replies)) if reads[channel] is not None else []
                    view = history.View(epoch.decode("ascii") if epoch else None, int(top or 0), entries)
                    if channel not in self._histories and view.epoch is not None and self._registry.listeners(channel):
                        self._histories[channel] = _ChannelMemory.from_view(view)
                    result.set(view)
        except BaseException as exc:
            for result in mine.values():
                result.set_exception(exc)
            raise
        finally:
            for channel in mine:
                self._reads.pop((channel, reads[channel]), None)
        views: Dict[str, history.View] = {}
        for channel, result in [*mine.items(), *waiting.items()]:
            # A read queued behind a hung round trip outlasts this wait: "not now", not a gevent.Timeout (a 500).
            result.wait(self._timeout)
            if not result.ready():
                raise RedisUnavailable(f"no history of {channel!r} within {self._timeout} s")
            got = result.get()
            assert got is not None  # set to a view or an exception
            views[channel] = got
        return views

    def _execute(self, commands: List[Tuple[Any, ...]]) -> List[Any]:
        # Under a cluster a master that is down fails only the commands sent to
        # it (refused, or a timeout): the other masters' channels go on.
        if not self._cluster and not self.connected:
            raise RedisUnavailable("not connected to Redis")
        return self._commands.execute(commands)

    # -- delivery ------------------------------------------------------------

    def identities(self) -> List[Tuple[Listener, control.Identity]]:
        """Each attached socket that has an identity, with it."""
        return list(self._identities.items())

    def close_matching(self, order: control.Order) -> int:
        """Start closing every local socket ``order`` matches; how many."""
        closing = [listener for listener, identity in self._identities.items() if order.matches(identity)]
        for listener in closing:
            listener.server_close(order.code, order.reason)  # type: ignore[arg-type]  # any server code, not only the enum's
        return len(closing)

    def _obey(self, payload: bytes) -> None:
        order = control.Order.decode(payload)
        if order is None:
            logger.warning("ignored a message on the control channel %r that is no disconnect order: %r", self._control, payload[:200])
            return
        closed = self.close_matching(order)
        if closed:
            logger.info("disconnect order %s: closing %d socket(s)", order, closed)

    def _dispatch(self, channel: str, payload: bytes) -> None:
        if channel == self._control:
            self._obey(payload)
            return
        if self._healing is not None and (not self._cluster or channel in self._gap_channels):
            self._healing.append((channel, payload))  # after the healed ones
            return
        listeners = self._registry.listeners(channel)
        if not listeners:
            return
        epoch, offset, data = history.parse_published(payload)
        if offset is not None and not self._remember(channel, epoch, offset, data):
            # Delivered already, by the healing of a gap: its read on the command
            # connection can overtake the same publication on the subscription.
            return
        self._deliver(history.Publication(channel, data, epoch, offset), listeners)

    def _deliver(self, publication: history.Publication, listeners: Collection[Listener]) -> None:
        started = _clock()
        for listener in list(listeners):
            try:
                listener.deliver(publication)
            except Exception:  # one broken socket must not starve the others
                logger.exception("delivery to %r failed", listener)
        METRICS.dispatched(len(listeners), _clock() - started)

    def _remember(self, channel: str, epoch: Optional[str], offset: int, data: bytes) -> bool:
        """Keep a publication in the channel's memory; ``False`` if it was delivered before."""
        memory = self._histories.get(channel)
        if memory is None or memory.epoch != epoch:
            memory = self._histories[channel] = _ChannelMemory(epoch, offset - 1)
        return memory.add(offset, data)

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

    # -- gaps in the subscription --------------------------------------------

    def _on_redis_up(self, first: bool, address: Optional[Address] = None) -> None:
        """The reader (under a cluster: the one of the master at ``address``) is subscribed again, or for the first time;
        must not block it."""
        if not first:
            METRICS.redis_reconnects += 1
        if self._healing is not None:
            self._heal_generation += 1
            gevent.spawn(self._heal, self._heal_generation)
        gevent.spawn(self._measure_gap, address, *self._count(address).end_gap())

    def _on_redis_lost(self, gaps: Optional[Dict[Address, Optional[float]]] = None) -> None:
        """The subscription was lost; under a cluster, ``gaps`` names the masters whose subscription ended
        (see :class:`~ws4redis_mw.cluster.ClusterSubscription`)."""
        lost_at = time.monotonic()
        if gaps is None:
            self._count(None).lose(lost_at, self._subscription.last_heard)
        else:
            for address, last_heard in gaps.items():
                self._count(address).lose(lost_at, last_heard)
            slot_map = self._subscription.slot_map if isinstance(self._subscription, ClusterSubscription) else None
            for key, count in self._counts.items():
                if key is not None and count.lost_at is not None and slot_map is not None and key not in slot_map.masters:
                    # A master that left the slot map: its gap ends now (its slots' publications go to another master).
                    gevent.spawn(self._measure_gap, key, *count.end_gap())
        if self._histories and self._cluster:
            # Only the channels of the lost master (no longer subscribed) wait
            # for the healing; the other masters' keep flowing meanwhile.
            self._gap_channels.update(channel for channel in self._registry.wanted() if not self._registry.is_subscribed(channel))
        if self._histories and self._healing is None:
            # Hold live messages back from now on (the resubscription itself
            # may read some) until what the gap swallowed is delivered.
            self._healing = []
            self._healed.clear()

    def _heal(self, generation: int) -> None:
        """Deliver what each history channel got while the subscription was down, then what was held back."""
        channels = [(channel, memory) for channel, memory in self._histories.items() if self._registry.listeners(channel)]
        try:
            commands: List[Tuple[Any, ...]] = []
            for channel, memory in channels:
                config = self._policy.for_channel(channel)
                commands.append(("HMGET", history.meta_key(channel, self._prefix), "epoch", "offset"))
                commands.append(("XRANGE", history.stream_key(channel, self._prefix), f"{memory.top + 1}-0", "+",
                                 "COUNT", config.size if config else 1))
            replies = iter(self._commands.execute(commands) if commands else [])
            for channel, memory in channels:
                (epoch, top), entries = next(replies), _entries(next(replies))
                self._heal_channel(channel, memory, epoch.decode("ascii") if epoch else None, int(top or 0), entries)
        except Exception as exc:
            logger.warning("healing the subscription's gap failed, messages may have been missed: %s", exc)
        if generation != self._heal_generation:
            return  # a newer gap's healing delivers what is held back
        held, self._healing = self._healing or [], None
        self._gap_channels.clear()
        self._healed.set()
        for channel, payload in held:
            self._dispatch(channel, payload)  # what the healing delivered already is dropped there

    def _heal_channel(self, channel: str, memory: "_ChannelMemory", epoch: Optional[str], top: int,
                      entries: List[Tuple[int, bytes]]) -> None:
        if epoch != memory.epoch:
            logger.warning("history of %s lost its continuity (epoch %s, now %s): the gap cannot be healed", channel, memory.epoch, epoch)
            METRICS.history_unhealed += 1
            self._histories.pop(channel, None)
            return
        new = [entry for entry in entries if entry[0] > memory.top]
        if new and new[0][0] != memory.top + 1 or not new and top > memory.top:
            lost = (new[0][0] if new else top + 1) - memory.top - 1
            logger.warning("%d publications of %s are no longer in its history: the gap is healed in part", lost, channel)
            METRICS.history_unhealed += 1
        METRICS.history_healed += len(new)
        for offset, data in new:
            listeners = self._registry.listeners(channel)
            memory.add(offset, data)
            if listeners:
                self._deliver(history.Publication(channel, data, epoch, offset), listeners)

    def _count(self, address: Optional[Address]) -> PublishCount:
        count = self._counts.get(address)
        if count is None:
            count = self._counts[address] = PublishCount()
        return count

    def _count_sources(self) -> List[Optional[Address]]:
        """Whose count of publications is read: Redis (``None``), or under a cluster each master of the slot map."""
        if isinstance(self._subscription, ClusterSubscription):
            slot_map = self._subscription.slot_map
            return list(slot_map.masters) if slot_map is not None else []
        return [None]

    def _subscribed(self, address: Optional[Address]) -> bool:
        """Whether the subscription (under a cluster: the one to the master at ``address``) is up."""
        if address is None:
            return self.connected
        return isinstance(self._subscription, ClusterSubscription) and self._subscription.node_connected(address)

    def _read_publish_count(self, address: Optional[Address]) -> Optional[Reading]:
        """Redis' (under a cluster: the master's at ``address``) count of publications, on its command connection."""
        commands: List[Tuple[Any, ...]] = [("INFO", "server"), ("INFO", "commandstats")]
        try:
            if isinstance(self._commands, ClusterCommands):
                if address is None:
                    return None
                server, commandstats = self._commands.execute_on(address, commands)
            else:
                server, commandstats = self._commands.execute(commands)
        except Exception:  # Redis gone, not answering, or INFO forbidden: no reading
            return None
        return _info_field(server, "run_id"), _publish_calls(commandstats), time.monotonic()

    def _measure_gap(self, address: Optional[Address], lost_at: Optional[float], last_heard: Optional[float]) -> None:
        """Read the count again after a gap (or the first time, ``lost_at`` None) and add what may have been missed."""
        count = self._count(address)
        readings = list(count.readings)
        now = self._read_publish_count(address)
        count.readings.clear()
        if now is not None:
            count.readings.append(now)
        if lost_at is None:
            return
        METRICS.subscription_gaps += 1
        down = time.monotonic() - lost_at
        METRICS.subscription_gap_seconds += down
        where = "Redis" if address is None else f"Redis master {address[0]}:{address[1]}"
        if now is None:
            logger.warning("subscription to %s was down %.2f s; its count of publications could not be read", where, down)
            return
        missed = possibly_missed(readings, last_heard, now)
        if missed is None:
            logger.warning("subscription to %s was down %.2f s; no reading to bound the messages missed", where, down)
            return
        METRICS.possibly_missed += missed
        if missed:
            logger.warning("subscription to %s was down %.2f s; up to %d messages may have been missed", where, down, missed)

    def _tick_forever(self) -> None:
        while True:
            gevent.sleep(TICK)
            now = self._loop.now()
            for address in self._count_sources():
                if self._subscribed(address) and self._count(address).reading_due(time.monotonic()):
                    gevent.spawn(self._take_reading, address)
            if self._sentinel is not None and self.connected and time.monotonic() - self._master_checked >= self._health_interval:
                self._master_checked = time.monotonic()
                gevent.spawn(self._check_master)
            for listener in self._registry.all_listeners():
                try:
                    listener.tick(now)
                except Exception:
                    logger.exception("timer of %r failed", listener)

    def _master_switched(self) -> None:
        gevent.spawn(self._check_master)

    def _check_master(self) -> None:
        """Under Sentinel: follow a failover as soon as the sentinels name another master."""
        assert self._sentinel is not None
        sentinels, service_name, _, sentinel_kwargs = self._sentinel
        try:
            master = discover_master(sentinels, service_name, sentinel_kwargs, self._timeout)
        except Exception as exc:
            logger.warning("asking the sentinels for the master failed: %s", exc)
            return
        current = self._subscription.address
        if current is not None and (current[0], int(current[1])) != master:
            logger.warning("the sentinels name %s:%d as master of %r, not %s:%s: reconnecting", *master, service_name, *current)
            self._commands.close()
            self._subscription.reconnect()

    def _take_reading(self, address: Optional[Address]) -> None:
        reading = self._read_publish_count(address)
        if reading is not None and self._subscribed(address):
            self._count(address).readings.append(reading)


_clock = time.perf_counter

#: Publications a process remembers per history channel, to serve reconnecting clients without Redis.
MEMORY_ENTRIES = 32
#: ... and at most this many bytes of them.
MEMORY_BYTES = 64 * 1024


class _ChannelMemory:
    """The epoch, last offset and last few publications of a history channel that this process delivered."""

    __slots__ = ("epoch", "top", "delivered", "entries", "size")

    def __init__(self, epoch: Optional[str], top: int, delivered: Optional[int] = None):
        self.epoch = epoch
        self.top = top
        # The last offset handed to this process's listeners: a read of the
        # history (from_view) knows publications they may not have had yet.
        self.delivered = top if delivered is None else delivered
        self.entries: Deque[Tuple[int, bytes]] = collections.deque()  # contiguous, ending at top
        self.size = 0

    @classmethod
    def from_view(cls, view: history.View) -> "_ChannelMemory":
        memory = cls(view.epoch, view.top, delivered=0)
        tail = [entry for entry in view.entries if entry[0] <= view.top]
        if tail and tail[-1][0] == view.top:
            for offset, data in tail[-MEMORY_ENTRIES:]:
                memory.entries.append((offset, data))
                memory.size += len(data)
            memory._trim()
        return memory

    def add(self, offset: int, data: bytes) -> bool:
        """Remember publication ``offset``, delivered now; ``False`` if this very publication was delivered before.

        Only the same bytes at the same offset are a repeat: after a failover
        that lost writes, the promoted replica hands out offsets again with
        other publications, which must still be delivered.
        """
        if offset <= self.delivered and self._holds(offset, data):
            return False
        self.delivered = max(self.delivered, offset)
        if offset <= self.top:
            index = offset - self.entries[0][0] if self.entries else -1
            if 0 <= index < len(self.entries) and self.entries[index][0] == offset:  # handed out again: keep what came
                self.size += len(data) - len(self.entries[index][1])
                self.entries[index] = (offset, data)
            return True
        if offset != self.top + 1:
            self.entries.clear()
            self.size = 0
        self.top = offset
        self.entries.append((offset, data))
        self.size += len(data)
        self._trim()
        return True

    def _holds(self, offset: int, data: bytes) -> bool:
        if not self.entries or offset < self.entries[0][0] or offset > self.top:
            return False
        index = offset - self.entries[0][0]  # contiguous: one look
        return index < len(self.entries) and self.entries[index] == (offset, data)

    def _trim(self) -> None:
        while len(self.entries) > MEMORY_ENTRIES or (self.size > MEMORY_BYTES and len(self.entries) > 1):
            self.size -= len(self.entries.popleft()[1])

    def covers(self, since: int) -> bool:
        """Whether everything after offset ``since`` is remembered."""
        return since >= self.top or (bool(self.entries) and self.entries[0][0] <= since + 1)

    def view(self) -> history.View:
        return history.View(self.epoch, self.top, tuple(self.entries))


def _entries(reply: Any) -> List[Tuple[int, bytes]]:
    """``(offset, data)`` of an ``XRANGE`` reply whose ids are ``<offset>-0``."""
    entries = []
    for entry_id, fields in reply or ():
        values = dict(zip(fields[::2], fields[1::2], strict=False))
        entries.append((int(entry_id.split(b"-", 1)[0]), values.get(b"d", b"")))
    return entries


def _info_field(info: Any, name: str) -> str:
    text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def _publish_calls(commandstats: Any) -> int:
    """PUBLISH and SPUBLISH calls from ``INFO commandstats``."""
    text = commandstats.decode("utf-8", "replace") if isinstance(commandstats, bytes) else str(commandstats)
    calls = 0
    for line in text.splitlines():
        if line.startswith(("cmdstat_publish:", "cmdstat_spublish:")):
            calls += int(line.split("calls=", 1)[1].split(",", 1)[0])
    return calls


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


def discard_process_hubs() -> None:
    """Stop this process's hubs and forget them, so that the next :func:`get_hub` starts a fresh one.

    For a server that stops while the process goes on (a test's live server,
    whose gevent loop ends with its thread); it must run in that loop.
    """
    for key in [key for key in _hubs if key[0] == os.getpid()]:
        _hubs.pop(key).stop()


def process_stats() -> List[Dict[str, Any]]:
    """:meth:`Hub.stats` of each hub of this process (for health checks and tests)."""
    return [hub.stats() for hub in process_hubs()]
