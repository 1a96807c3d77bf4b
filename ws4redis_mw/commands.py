"""The hub's command connection: concurrent commands pipelined into shared round trips.

Design rules of this module:

* One Redis connection per process for commands (``PUBLISH`` + ``SET EX``,
  ``MGET`` of kept messages), written by one flusher greenlet
  (:class:`~ws4redis_mw.ondemand.OnDemand`) that sends everything queued at
  that moment in one write and reads the replies back in order.  Concurrent
  publishes from many sockets thus share round trips instead of queueing
  behind each other's.
* An error reply fails only the caller whose command got it; a broken
  connection fails every caller of that batch with :class:`RedisUnavailable`
  and is replaced on the next use.
* An idle connection may have been closed by the other side meanwhile
  (Redis' ``timeout``, a NAT or proxy forgetting it): before a batch is
  written, a connection that is readable (end of stream, or bytes nobody
  asked for) is replaced.  If the batch still fails with a broken connection
  before any reply was read, it is sent once more on a new connection; a
  timeout is never retried (Redis may be executing it, and a hung Redis
  must fail fast).
* A connection older than the subscription's last reconnect may point at a
  Redis that has restarted since: it is replaced rather than found out by
  losing a publish (``generation``).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple, Union, cast

import gevent.event
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .connection import hub_connection
from .errors import RedisUnavailable
from .ondemand import OnDemand

__all__ = ["CommandPipeline", "RedisUnavailable", "CONNECTION_ERRORS", "CONNECT_TIMEOUT"]

#: Default seconds to wait for Redis to connect, answer or confirm a subscription
#: (``WS4REDIS_REDIS_TIMEOUT``).
CONNECT_TIMEOUT = 2.0

CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)

Command = Tuple[Any, ...]


class _NoReplyRead(Exception):
    """The connection broke before the first reply of a batch: the batch may be sent again."""


_FAILURES = (_NoReplyRead, *CONNECTION_ERRORS)


class CommandPipeline:
    def __init__(self, config: Union[Dict[str, Any], str], generation: Callable[[], int], timeout: float = CONNECT_TIMEOUT):
        self._config = config
        self._timeout = timeout
        self._generation = generation
        self._conn: Optional[AbstractConnection] = None
        self._conn_generation = -1
        self._queue: List[Tuple[List[Command], "gevent.event.AsyncResult[List[Any]]"]] = []
        self._flusher = OnDemand(self._flush)

    def execute(self, commands: List[Command]) -> List[Any]:
        """Run ``commands`` in the next round trip; their replies, or the first error reply raised."""
        replies = self.replies(commands)
        for reply in replies:
            if isinstance(reply, RedisError):
                raise reply
        return replies

    def replies(self, commands: List[Command]) -> List[Any]:
        """Run ``commands`` in the next round trip; their replies, error replies included (as exceptions, not raised).

        For a caller that acts on some error replies, such as a cluster's
        ``ASK``: which command got it matters, and the others ran.
        """
        result: "gevent.event.AsyncResult[List[Any]]" = gevent.event.AsyncResult()
        self._queue.append((commands, result))
        self._flusher.wake()
        # The flusher sets a list or an exception, never None.
        return cast(List[Any], result.get())

    def close(self) -> None:
        if self._conn is not None:
            self._conn.disconnect()
            self._conn = None

    def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            commands = [command for own, _ in batch for command in own]
            try:
                try:
                    replies = self._round_trip(commands)
                except _NoReplyRead:
                    self.close()
                    replies = self._round_trip(commands)
            except _FAILURES as exc:
                self.close()
                error = RedisUnavailable(str(exc))
                for _, result in batch:
                    result.set_exception(error)
                continue
            start = 0
            for own, result in batch:
                result.set(replies[start:start + len(own)])
                start += len(own)

    def _round_trip(self, commands: List[Command]) -> List[Any]:
        conn = self._connection()
        replies: List[Any] = []
        try:
            conn.send_packed_command(conn.pack_commands(commands), check_health=False)
            first = conn.read_response()
        except ResponseError as error:
            first = error
        except RedisTimeoutError:
            raise
        except (RedisConnectionError, OSError) as exc:
            raise _NoReplyRead(str(exc)) from exc
        replies.append(first)
        for _ in commands[1:]:
            try:
                replies.append(conn.read_response())
            except ResponseError as error:  # an error reply; the next replies still follow
                replies.append(error)
        return replies

    def _connection(self) -> AbstractConnection:
        generation = self._generation()
        if self._conn is not None and self._conn_generation == generation and _closed_while_idle(self._conn):
            self.close()
        if self._conn is None or self._conn_generation != generation:
            self.close()
            conn = hub_connection(self._config, socket_timeout=self._timeout, socket_connect_timeout=self._timeout, protocol=2)
            conn.connect()
            self._conn, self._conn_generation = conn, generation
        return self._conn


def _closed_while_idle(conn: AbstractConnection) -> bool:
    """Whether an idle connection has something to read: end of stream (closed by Redis' ``timeout``) or stray bytes."""
    try:
        return bool(conn.can_read(timeout=0))
    except CONNECTION_ERRORS:
        return True
