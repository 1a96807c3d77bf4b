"""Redis Sentinel: hear of a failover the moment the sentinels announce it.

Design rules of this module:

* One greenlet per hub (only with a Sentinel configuration) holds a
  connection to one sentinel, subscribed to its ``+switch-master`` channel,
  and calls ``on_switch`` when the service's master changes.  A sentinel that
  goes away is replaced by the next one of the list, a second later.
* It only speeds things up: the hub also asks the sentinels for the master
  every ``redis_health_interval`` seconds, which catches what a lost
  announcement would miss.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

import gevent
from redis.connection import Connection
from redis.exceptions import RedisError

from .connection import GeventConnection

__all__ = ["SentinelWatcher", "RETRY"]

logger = logging.getLogger("ws4redis_mw.hub")

#: Seconds before the next sentinel is tried after one was lost.
RETRY = 1.0


class SentinelWatcher:
    def __init__(self, sentinels: List[Tuple[str, int]], service_name: str, sentinel_kwargs: Dict[str, Any],
                 timeout: float, on_switch: Callable[[], None]):
        self._sentinels = sentinels
        self._service_name = service_name
        self._sentinel_kwargs = sentinel_kwargs
        self._timeout = timeout
        self._on_switch = on_switch
        self._greenlet: Optional[gevent.Greenlet[[], None]] = None

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=2)
            self._greenlet = None

    def _run(self) -> None:
        attempt = 0
        while True:
            host, port = self._sentinels[attempt % len(self._sentinels)]
            attempt += 1
            # No socket timeout: the connection is silent until a failover.
            conn: Connection = GeventConnection(host=host, port=port, socket_timeout=None, socket_connect_timeout=self._timeout,
                                                protocol=2, lib_name=None, lib_version=None, socket_keepalive=True,
                                                **self._sentinel_kwargs)
            try:
                conn.connect()
                conn.send_command("SUBSCRIBE", "+switch-master", check_health=False)
                while True:
                    reply = conn.read_response()
                    # "+switch-master": "<service> <old host> <old port> <new host> <new port>"
                    if isinstance(reply, list) and reply[0] == b"message" and reply[2].split()[:1] == [self._service_name.encode()]:
                        logger.warning("sentinel %s:%d announces a new master of %r: %s", host, port, self._service_name,
                                       reply[2].decode("utf-8", "replace"))
                        self._on_switch()
            except (RedisError, OSError) as exc:
                logger.info("sentinel %s:%d lost (%s); listening to the next one", host, port, exc)
            finally:
                conn.disconnect()
            gevent.sleep(RETRY)
