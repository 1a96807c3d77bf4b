"""Redis Cluster: one sharded subscription per master, commands routed by hash slot.

Design rules of this module:

* Under a cluster configuration (:func:`~ws4redis_mw.connection.is_cluster`)
  the hub's subscription is a :class:`ClusterSubscription`.  It reads the slot
  map (``CLUSTER SLOTS``) from the configured nodes and keeps one
  :class:`~ws4redis_mw.subscription.Subscription` per master, in sharded mode
  (``SSUBSCRIBE``), subscribed to the wanted channels whose slot that master
  serves: one subscription connection per master and process, never one per
  socket.  Each keeps the reconnect, health and confirmation rules of
  :mod:`ws4redis_mw.subscription`.
* The slot map is read again every ``health_interval`` seconds (every
  :data:`MAP_RETRY` while a master's subscription is down: a killed master's
  replica takes over within seconds) and at once when a master's
  subscription is lost, refused (``MOVED``) or ended by Redis (a
  ``sunsubscribe`` we did not ask for: after a manual failover the old
  master, now a replica, keeps the connection open and unsubscribes it).  If it changed
  (a failover, a resharding), every master's subscription is replaced and each
  new one subscribes to what the registry wants of its slots.  Between the
  change and the resubscription nothing is delivered: that is a gap like a
  Redis restart, healed from the history of channels that keep one.
* Commands (:class:`ClusterCommands`) go to the master of their key's slot:
  a batch is split by master, each part is sent through that master's
  :class:`~ws4redis_mw.commands.CommandPipeline` (all parts at once) and the
  replies are put back in order.  ``MGET`` spans slots, so it becomes one
  ``GET`` per key.  A ``MOVED`` reply fails the batch with
  :class:`RedisUnavailable` and has the map read again; an ``ASK`` reply (a
  slot being moved, its key already gone to the importing master) is
  followed: that command alone is sent there after ``ASKING``.
* Why sharded pub/sub: a classic ``PUBLISH`` on a cluster is sent to every
  node over the cluster bus, so every master does the work of every message
  and adding masters adds no delivery capacity.  ``SPUBLISH`` stays on the
  master (and replicas) of its slot.
"""

from __future__ import annotations

import array
import logging
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import gevent
import gevent.event
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, MovedError, RedisError, ResponseError, TryAgainError

from .commands import CONNECTION_ERRORS, CommandPipeline, RedisUnavailable
from .connection import cluster_config, hub_connection, node_config
from .registry import Registry
from .subscription import HEALTH_INTERVAL, Subscription

__all__ = ["SlotMap", "read_slot_map", "ClusterSubscription", "ClusterCommands", "SLOTS"]

logger = logging.getLogger("ws4redis_mw.hub")

#: Hash slots of a Redis Cluster.
SLOTS = 16384
#: Seconds between two attempts to read the slot map while none could be read or a master's subscription is down.
MAP_RETRY = 0.5

Address = Tuple[str, int]


class SlotMap:
    """Which master serves each hash slot."""

    def __init__(self, ranges: List[Tuple[int, int, Address]]):
        self.ranges = sorted(ranges)
        self.masters: List[Address] = sorted({address for _, _, address in self.ranges})
        index = {address: i for i, address in enumerate(self.masters)}
        # Index of the master + 1 per slot (0: no master); 16 bits: a cluster may have
        # up to 16,384 masters, more than a bytearray's 255.
        self._owner = array.array("H", bytes(2 * SLOTS))
        for start, end, address in self.ranges:
            self._owner[start:end + 1] = array.array("H", [index[address] + 1]) * (end + 1 - start)

    def master_of(self, key: Union[str, bytes]) -> Address:
        """The master of ``key``'s slot (hash tags honoured); :class:`RedisUnavailable` if none serves it."""
        owner = self._owner[key_slot(key.encode("utf-8") if isinstance(key, str) else key)]
        if not owner:
            raise RedisUnavailable(f"no master serves the slot of {key!r}")
        return self.masters[owner - 1]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SlotMap) and other.ranges == self.ranges

    __hash__ = None  # type: ignore[assignment]


def read_slot_map(config: Union[Dict[str, Any], str], nodes: List[Address], timeout: float) -> SlotMap:
    """``CLUSTER SLOTS`` of the first of ``nodes`` that answers."""
    errors = []
    for host, port in nodes:
        conn = hub_connection(node_config(config, host, port), socket_timeout=timeout, socket_connect_timeout=timeout, protocol=2)
        try:
            conn.connect()
            conn.send_command("CLUSTER", "SLOTS", check_health=False)
            reply = conn.read_response()
        except (*CONNECTION_ERRORS, ResponseError) as exc:
            errors.append(f"{host}:{port}: {exc}")
            continue
        finally:
            conn.disconnect()
        ranges = []
        for entry in reply:
            start, end, master = int(entry[0]), int(entry[1]), entry[2]
            # An empty host: the node's own address, the one we asked.
            master_host = master[0].decode() if master[0] else host
            ranges.append((start, end, (master_host, int(master[1]))))
        if ranges:
            return SlotMap(ranges)
        errors.append(f"{host}:{port}: no slot assigned")
    raise RedisUnavailable("no cluster node gave the slot map (" + "; ".join(errors) + ")")


class _NodeChannels:
    """The share of the registry one master serves (a :class:`~ws4redis_mw.subscription.WantedChannels`)."""

    def __init__(self, registry: Registry[Any], slot_map: SlotMap, address: Address):
        self._registry = registry
        self._map = slot_map
        self._address = address

    def wanted(self) -> List[str]:
        return [channel for channel in self._registry.wanted() if self._map.master_of(channel) == self._address]

    def confirm(self, channel: str) -> None:
        self._registry.confirm(channel)

    def is_subscribed(self, channel: str) -> bool:
        return self._registry.is_subscribed(channel)

    def connection_lost(self) -> None:
        self._registry.connection_lost_for(self.wanted())

    def __len__(self) -> int:
        return len(self._registry)


class ClusterSubscription:
    """The hub's subscription under Redis Cluster: one sharded :class:`Subscription` per master.

    Same interface as :class:`Subscription`, as far as the hub uses it,
    except the callbacks: ``on_up(first, address)`` names the master whose
    subscription is up, and ``on_lost(gaps)`` the masters whose subscription
    ended, each with its ``last_heard`` (``None`` for a master new in a
    replaced slot map: nothing of it was heard).
    """

    def __init__(self, config: Union[Dict[str, Any], str], registry: Registry[Any], on_message: Callable[[str, bytes], None],
                 *, timeout: float, health_interval: float = HEALTH_INTERVAL,
                 on_up: Optional[Callable[[bool, Address], None]] = None,
                 on_lost: Optional[Callable[[Dict[Address, Optional[float]]], None]] = None):
        self._config = config
        self._startup_nodes, _ = cluster_config(config)
        self._registry = registry
        self._on_message = on_message
        self._timeout = timeout
        self._health_interval = health_interval
        self._on_up = on_up
        self._on_lost = on_lost
        self._map: Optional[SlotMap] = None
        self._nodes: Dict[Address, Subscription] = {}
        self._maps_used = 0  # slot maps subscribed so far: the first up of the first one is the "first" connection
        self._mapped = gevent.event.Event()
        self._refresh = gevent.event.Event()
        self._supervisor: Optional[gevent.Greenlet[[], None]] = None
        self._stopped = False

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        if self._supervisor is None:
            self._supervisor = gevent.spawn(self._run)

    def stop(self) -> None:
        self._stopped = True
        if self._supervisor is not None:
            self._supervisor.kill(block=True, timeout=2)
        for node in self._nodes.values():
            node.stop()

    @property
    def slot_map(self) -> Optional[SlotMap]:
        return self._map

    @property
    def connected(self) -> bool:
        return bool(self._nodes) and all(node.connected for node in self._nodes.values())

    @property
    def generation(self) -> int:
        return sum(node.generation for node in self._nodes.values()) + 1_000_000 * self._maps_used

    @property
    def last_heard(self) -> float:
        return min((node.last_heard for node in self._nodes.values()), default=0.0)

    @property
    def address(self) -> Optional[Address]:
        return None  # several: the Sentinel check does not apply

    def node_connected(self, address: Address) -> bool:
        """Whether the subscription to the master at ``address`` is up."""
        node = self._nodes.get(address)
        return node is not None and node.connected

    def node_generation(self, address: Address) -> int:
        """Changes whenever the master at ``address`` was connected again or the map replaced (for its command pipeline)."""
        node = self._nodes.get(address)
        return 1_000_000 * self._maps_used + (node.generation if node is not None else 0)

    def reconnect(self) -> None:
        """Read the slot map again now."""
        self._refresh.set()

    def wait_connected(self, timeout: float, channels: Optional[Iterable[str]] = None) -> bool:
        """Whether the masters of ``channels`` (default: every master) are connected; waits at most ``timeout``.

        A handshake names its channels: a master that is down refuses only the
        sockets that want one of its channels.
        """
        self.start()
        deadline = gevent.get_hub().loop.now() + timeout
        if not self._mapped.wait(timeout):
            return False
        addresses = list(self._nodes) if channels is None else list(self._by_node(list(channels)))
        for address in addresses:
            node = self._nodes.get(address)
            if node is None or not node.wait_connected(max(0.0, deadline - gevent.get_hub().loop.now())):
                return False
        return True

    # -- subscribing ---------------------------------------------------------

    def _by_node(self, channels: List[str]) -> Dict[Address, List[str]]:
        if self._map is None:
            raise RedisUnavailable("the cluster's slot map is not known yet")
        groups: Dict[Address, List[str]] = {}
        for channel in channels:
            groups.setdefault(self._map.master_of(channel), []).append(channel)
        return groups

    def subscribe(self, channels: Iterable[str]) -> None:
        for address, group in self._by_node(list(channels)).items():
            node = self._nodes.get(address)
            if node is None:
                raise RedisUnavailable(f"no subscription to master {address[0]}:{address[1]}")
            node.subscribe(group)

    def wait_confirmed(self, channels: Iterable[str], timeout: float) -> None:
        with gevent.Timeout(timeout, RedisUnavailable("Redis did not confirm the subscription")):
            for address, group in self._by_node(list(channels)).items():
                node = self._nodes.get(address)
                if node is None:
                    raise RedisUnavailable(f"no subscription to master {address[0]}:{address[1]}")
                node.wait_confirmed(group, timeout)

    def unsubscribe(self, channels: Iterable[str]) -> None:
        if self._map is None:
            return
        for address, group in self._by_node(list(channels)).items():
            node = self._nodes.get(address)
            if node is not None:
                node.unsubscribe(group)

    # -- the slot map --------------------------------------------------------

    def _run(self) -> None:
        while not self._stopped:
            try:
                known = [*(self._map.masters if self._map else []), *self._startup_nodes]
                new = read_slot_map(self._config, list(dict.fromkeys(known)), self._timeout)
            except RedisUnavailable as exc:
                logger.warning("reading the cluster's slot map failed: %s", exc)
                new = None
            if new is not None and new != self._map:
                self._replace(new)
            self._refresh.clear()
            self._refresh.wait(self._health_interval if new is not None and self.connected else MAP_RETRY)

    def _replace(self, new: SlotMap) -> None:
        old, had_map = dict(self._nodes), self._map is not None
        if had_map:
            logger.warning("the cluster's slot map changed (masters %s): subscribing again on each master",
                           ", ".join(f"{h}:{p}" for h, p in new.masters))
        for node in old.values():
            node.stop()
        self._registry.connection_lost()
        self._map = new
        self._maps_used += 1
        self._nodes = {address: self._node(new, address) for address in new.masters}
        for node in self._nodes.values():
            node.start()
        if had_map and self._on_lost is not None:
            gaps: Dict[Address, Optional[float]] = {address: node.last_heard for address, node in old.items()}
            gaps.update((address, None) for address in new.masters if address not in old)
            self._on_lost(gaps)
        self._mapped.set()

    def _node(self, slot_map: SlotMap, address: Address) -> Subscription:
        """The sharded subscription to the master at ``address`` (not started)."""
        def up(first: bool) -> None:
            if self._on_up is not None:
                self._on_up(first and self._maps_used == 1, address)

        def lost() -> None:
            self._refresh.set()  # a failover? read the map now
            if self._on_lost is not None:
                self._on_lost({address: node.last_heard})

        node = Subscription(node_config(self._config, *address), _NodeChannels(self._registry, slot_map, address),
                            self._on_message, timeout=self._timeout, health_interval=self._health_interval,
                            on_up=up, on_lost=lost, sharded=True)
        return node


class ClusterCommands:
    """The hub's command pipeline under Redis Cluster: one :class:`CommandPipeline` per master, batches split by slot."""

    def __init__(self, config: Union[Dict[str, Any], str], subscription: ClusterSubscription, timeout: float):
        self._config = config
        self._subscription = subscription
        self._timeout = timeout
        self._pipelines: Dict[Address, CommandPipeline] = {}

    def _pipeline(self, address: Address) -> CommandPipeline:
        pipeline = self._pipelines.get(address)
        if pipeline is None:
            pipeline = self._pipelines[address] = CommandPipeline(
                node_config(self._config, *address), lambda: self._subscription.node_generation(address), timeout=self._timeout)
        return pipeline

    def execute_on(self, address: Address, commands: List[Tuple[Any, ...]]) -> List[Any]:
        """Run ``commands`` (keyless ones, such as ``INFO``) on the node at ``address``; their replies."""
        return self._pipeline(address).execute(commands)

    def execute(self, commands: List[Tuple[Any, ...]]) -> List[Any]:
        """Run ``commands`` on their masters; their replies in order, or the first error reply raised."""
        slot_map = self._subscription.slot_map
        if slot_map is None:
            raise RedisUnavailable("the cluster's slot map is not known yet")
        parts: Dict[Address, List[Tuple[Any, ...]]] = {}
        places: Dict[Address, List[Tuple[int, int]]] = {}  # (command index, key index within an MGET or -1)
        replies: List[Any] = [None] * len(commands)
        for i, command in enumerate(commands):
            name = str(command[0]).upper()
            if name == "MGET":
                replies[i] = [None] * (len(command) - 1)
                for j, key in enumerate(command[1:]):
                    address = slot_map.master_of(key)
                    parts.setdefault(address, []).append(("GET", key))
                    places.setdefault(address, []).append((i, j))
                continue
            key = command[3] if name in ("EVAL", "EVALSHA") else command[1]
            address = slot_map.master_of(key)
            parts.setdefault(address, []).append(command)
            places.setdefault(address, []).append((i, -1))
        jobs = {address: gevent.spawn(self._replies, address, part) for address, part in parts.items()}
        gevent.joinall(list(jobs.values()))
        for address, job in jobs.items():
            error = job.exception or next((reply for reply in job.value or [] if isinstance(reply, RedisError)), None)
            if error is not None:
                if isinstance(error, (AskError, ClusterDownError, TryAgainError)):  # MovedError is an AskError
                    self._subscription.reconnect()
                    raise RedisUnavailable(f"the cluster moved a slot: {error}") from error
                raise error
            for (i, j), reply in zip(places[address], job.value or [], strict=True):
                if j < 0:
                    replies[i] = reply
                else:
                    replies[i][j] = reply
        return replies

    def _replies(self, address: Address, commands: List[Tuple[Any, ...]]) -> List[Any]:
        """``commands`` run on the master at ``address``, a command answered with ``ASK`` run again where it says.

        ``ASK``: the slot is being moved and this key has gone to the
        importing master already; the command did not run.  Sent there after
        ``ASKING`` it runs once, so a socket publishing during a resharding is
        not closed (a ``MOVED`` still fails and has the map read again).
        """
        replies = self._pipeline(address).replies(commands)
        for n, reply in enumerate(replies):
            if isinstance(reply, AskError) and not isinstance(reply, MovedError):
                replies[n] = self._pipeline((reply.host, reply.port)).replies([("ASKING",), commands[n]])[1]
        return replies

    def close(self) -> None:
        for pipeline in self._pipelines.values():
            pipeline.close()
        self._pipelines.clear()
