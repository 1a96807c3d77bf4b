"""A greenlet that exists only while there is work: the sockets' writers and the hub's command flusher.

``OnDemand(work).wake()`` starts a greenlet running ``work()`` unless one is
running already.  ``work`` must loop until nothing is left and then return;
whoever queues more work calls :meth:`OnDemand.wake` again.  Greenlets switch
only where they block, so between ``work`` seeing an empty queue and the
greenlet being forgotten nobody can queue anything: no work is stranded.
An idle socket thus costs no writer greenlet at all.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

import gevent

__all__ = ["OnDemand"]

logger = logging.getLogger("ws4redis_mw.ondemand")


class OnDemand:
    __slots__ = ("_work", "_greenlet")

    def __init__(self, work: Callable[[], None]):
        self._work = work
        self._greenlet: Optional[gevent.Greenlet[[], None]] = None

    @property
    def running(self) -> bool:
        return self._greenlet is not None

    def wake(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait up to ``timeout`` seconds for the work to finish; ``True`` if it did."""
        greenlet = self._greenlet
        if greenlet is not None:
            greenlet.join(timeout)
        return self._greenlet is None

    def kill(self) -> None:
        greenlet = self._greenlet
        if greenlet is not None:
            greenlet.kill(block=False)

    def _run(self) -> None:
        try:
            self._work()
        except Exception:  # the greenlet must end cleanly; the work logs its own expected errors
            logger.exception("%r failed", self._work)
        finally:
            self._greenlet = None
