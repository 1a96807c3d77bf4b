"""What one process counts: plain integers on one object per process (:data:`METRICS`).

Counting is integer arithmetic from the event loop's thread: no lock, no
label lookup on the per-message path (deliveries are counted once per Redis
message dispatched, never per socket).  Every module that counts imports
this one; reading and serving the numbers is :mod:`ws4redis_mw.metrics`'s,
which sits above the hub (it reads the hubs' states), so counting modules
never import it.  A forked child starts from zero.
"""

from __future__ import annotations

import bisect
import os
import time
from typing import Dict, Tuple

__all__ = ["Metrics", "METRICS", "DISPATCH_BUCKETS"]

#: Upper bounds, in seconds, of the dispatch-time histogram's buckets.
DISPATCH_BUCKETS: Tuple[float, ...] = (0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5)


class Metrics:
    """The counters of this process; see :func:`exposition` for their meaning."""

    def __init__(self) -> None:
        self.started = time.time()
        self.handshakes_accepted = 0
        self.handshakes_refused: Dict[int, int] = {}
        self.disconnects: Dict[int, int] = {}
        self.messages_dispatched = 0
        self.messages_delivered = 0
        self.published: Dict[str, int] = {"socket": 0, "django": 0}
        self.publish_failures: Dict[str, int] = {"socket": 0, "django": 0}
        self.redis_reconnects = 0
        self.subscription_gaps = 0
        self.subscription_gap_seconds = 0.0
        self.possibly_missed = 0
        self.history_healed = 0
        self.history_unhealed = 0
        self.recoveries: Dict[str, int] = {"recovered": 0, "not_recovered": 0}
        self.dispatch_counts = [0] * (len(DISPATCH_BUCKETS) + 1)
        self.dispatch_seconds = 0.0

    def dispatched(self, listeners: int, seconds: float) -> None:
        """One Redis message handed to ``listeners`` local sockets in ``seconds``."""
        self.messages_dispatched += 1
        self.messages_delivered += listeners
        self.dispatch_seconds += seconds
        self.dispatch_counts[bisect.bisect_left(DISPATCH_BUCKETS, seconds)] += 1

    def refused(self, status: int) -> None:
        self.handshakes_refused[status] = self.handshakes_refused.get(status, 0) + 1

    def closed(self, code: int) -> None:
        self.disconnects[code] = self.disconnects.get(code, 0) + 1


METRICS = Metrics()


def _reset_in_child() -> None:
    global METRICS
    METRICS.__init__()  # type: ignore[misc]  # same object: modules that imported it keep counting into it


os.register_at_fork(after_in_child=_reset_in_child)
