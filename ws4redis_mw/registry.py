"""Who listens to which channel in this process, and what Redis must be told: no I/O.

Design rules of this module:

* A channel is *wanted* while at least one local listener is attached to it.
  :meth:`Registry.add` returns the channels that just became wanted (to
  ``SUBSCRIBE``), :meth:`Registry.remove` those that no longer are (to
  ``UNSUBSCRIBE``); nothing else decides either.
* A wanted channel is *subscribed* once Redis has confirmed it on the current
  connection (:meth:`Registry.confirm`); a lost connection forgets every
  confirmation (:meth:`Registry.connection_lost`), and :meth:`Registry.wanted`
  is what the next connection subscribes to again.
* A confirmation for a channel nobody wants any more (it was removed while
  the ``SUBSCRIBE`` was on its way) does not make it subscribed.
* A *pinned* channel (the hub's control channel) is wanted with or without
  listeners, for the registry's whole life: it is never returned to
  unsubscribe, and it is not counted among the sockets' channels.
"""

from __future__ import annotations

from typing import Collection, Dict, Generic, Hashable, List, Sequence, Set, Tuple, TypeVar

__all__ = ["Registry"]

L = TypeVar("L", bound=Hashable)

_EMPTY: Tuple[()] = ()


class Registry(Generic[L]):
    def __init__(self, pinned: Sequence[str] = ()) -> None:
        self._listeners: Dict[str, Set[L]] = {}  # channel -> its listeners
        self._channels: Dict[L, Tuple[str, ...]] = {}  # listener -> its channels
        self._subscribed: Set[str] = set()
        self._pinned = tuple(dict.fromkeys(pinned))

    def add(self, listener: L, channels: Sequence[str]) -> List[str]:
        """Attach ``listener`` to ``channels``; the channels nobody wanted before."""
        unique = tuple(dict.fromkeys(channels))
        self._channels[listener] = unique
        new = []
        for channel in unique:
            group = self._listeners.get(channel)
            if group is None:
                group = self._listeners[channel] = set()
                if channel not in self._pinned:
                    new.append(channel)
            group.add(listener)
        return new

    def remove(self, listener: L) -> List[str]:
        """Detach ``listener`` everywhere; the channels nobody wants any more."""
        gone = []
        for channel in self._channels.pop(listener, _EMPTY):
            group = self._listeners.get(channel)
            if group is None:
                continue
            group.discard(listener)
            if not group:
                del self._listeners[channel]
                if channel not in self._pinned:
                    self._subscribed.discard(channel)
                    gone.append(channel)
        return gone

    def listeners(self, channel: str) -> Collection[L]:
        return self._listeners.get(channel, _EMPTY)

    def all_listeners(self) -> List[L]:
        return list(self._channels)

    def wanted(self) -> List[str]:
        return [*self._pinned, *(channel for channel in self._listeners if channel not in self._pinned)]

    def confirm(self, channel: str) -> None:
        if channel in self._listeners or channel in self._pinned:
            self._subscribed.add(channel)

    def is_subscribed(self, channel: str) -> bool:
        return channel in self._subscribed

    def connection_lost(self) -> None:
        self._subscribed.clear()

    def connection_lost_for(self, channels: Collection[str]) -> None:
        """One of several subscription connections (a cluster node's) was lost: forget its ``channels``' confirmations."""
        self._subscribed.difference_update(channels)

    def __contains__(self, listener: object) -> bool:
        return listener in self._channels

    def __len__(self) -> int:
        return len(self._channels)

    @property
    def channel_count(self) -> int:
        return len(self._listeners)
