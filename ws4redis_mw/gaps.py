"""What a gap in a Redis subscription may have cost: Redis' own count of publications, read before and after.

Redis keeps no pub/sub history, so a message published while a process is
not subscribed is lost for its sockets.  Redis does count its ``PUBLISH``
and ``SPUBLISH`` commands (``INFO commandstats``, with the server's
``run_id``); the hub reads that count every :data:`SNAPSHOT_INTERVAL`
seconds while subscribed (under a cluster, each master's on its own
connection), and again after subscribing anew.  This module holds the
readings and turns them into an upper bound of what a gap swallowed
(:func:`possibly_missed`); it does no I/O.
"""

from __future__ import annotations

import collections
from typing import Deque, Optional, Sequence, Tuple

__all__ = ["SNAPSHOT_INTERVAL", "Reading", "possibly_missed", "PublishCount"]

#: Seconds between two readings of Redis' PUBLISH count while connected.
SNAPSHOT_INTERVAL = 1.0
#: One reading of a Redis' count of publications: (``run_id``, PUBLISH and SPUBLISH calls, ``time.monotonic()`` when read).
Reading = Tuple[str, int, float]


def possibly_missed(readings: Sequence[Reading], last_heard: Optional[float], now: Reading) -> Optional[int]:
    """Upper bound of the publications a gap in a subscription to one Redis (or one cluster master) may have swallowed.

    ``readings``: that Redis' readings taken before the gap, oldest first;
    ``last_heard``: when the subscription last read a reply before the loss
    (readings up to then surely predate it), ``None`` for a master new in a
    replaced slot map (nothing of it was heard: every reading predates the
    gap); ``now``: the reading taken after resubscribing.  Another ``run_id``
    (a restart) gives the whole new count, and so does a new master never
    read; ``None`` when no reading bounds the gap.
    """
    if readings and readings[0][0] != now[0]:
        return now[1]  # Redis restarted (another run_id): every publication it has counted came after the loss
    if last_heard is None:
        return max(0, now[1] - readings[-1][1]) if readings else now[1]
    before = [reading for reading in readings if reading[2] <= last_heard]
    return max(0, now[1] - before[-1][1]) if before else None


class PublishCount:
    """The readings of one Redis' (under a cluster: one master's) count of publications and the gap it is in; no I/O."""

    __slots__ = ("readings", "due", "lost_at", "last_heard")

    def __init__(self) -> None:
        self.readings: Deque[Reading] = collections.deque(maxlen=8)
        self.due = 0.0  # time.monotonic() of the next periodic reading
        self.lost_at: Optional[float] = None  # when the subscription was lost, None while no gap is open
        self.last_heard: Optional[float] = 0.0  # at the loss: when the subscription last read a reply

    def reading_due(self, now: float) -> bool:
        """Whether a periodic reading is due at ``now`` (and if so, the next one in :data:`SNAPSHOT_INTERVAL`)."""
        if now < self.due:
            return False
        self.due = now + SNAPSHOT_INTERVAL
        return True

    def lose(self, at: float, last_heard: Optional[float]) -> None:
        """The subscription was lost at ``at``; a gap already open keeps its start."""
        if self.lost_at is None:
            self.lost_at, self.last_heard = at, last_heard

    def end_gap(self) -> Tuple[Optional[float], Optional[float]]:
        """Close the open gap: (``lost_at``, ``last_heard``), ``lost_at`` None if none was open."""
        gap, self.lost_at = (self.lost_at, self.last_heard), None
        return gap
