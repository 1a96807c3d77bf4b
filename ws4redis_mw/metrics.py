"""What one process counts, as a dict (:func:`stats`) and as Prometheus text (:func:`exposition`).

Design rules of this module:

* Counting is plain integer arithmetic on one object per process
  (:data:`METRICS`, :mod:`ws4redis_mw.counters`, which the counting modules
  import: this module reads the hubs, so it sits above them), from the event
  loop's thread: no lock, no label lookup on the per-message path.  Deliveries are counted once per Redis message
  dispatched (``+= listeners``), never per socket, and the dispatch time is
  one clock read before and after the dispatch of a message.
* What is a state rather than an event (open sockets, channels, backlog
  bytes, whether Redis is up) is read from the hubs when asked, not kept up
  to date on the way.
* Each process counts for itself: under gunicorn or uWSGI every worker has
  its own numbers and answers a scrape with them (``pid`` is in
  ``ws4redis_mw_process_info``); docs/operations.md says how to scrape or
  add them up.  A forked child starts from zero.
* :func:`serve` answers ``WS4REDIS_METRICS_URL`` for the middleware, only to
  the client addresses ``WS4REDIS_METRICS_ALLOWED`` names (403 otherwise): the
  visitor's address, read through trusted proxies (:mod:`ws4redis_mw.clientaddr`).
"""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Sequence, Tuple

from .clientaddr import from_environ
from .counters import DISPATCH_BUCKETS, METRICS, Metrics
from .hub import process_hubs

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from .settings import Settings

__all__ = ["Metrics", "METRICS", "DISPATCH_BUCKETS", "stats", "exposition", "serve", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _hub_states() -> Dict[str, Any]:
    hubs = process_hubs()
    connections = channels = backlog = 0
    for hub in hubs:
        connections += hub.listener_count
        channels += hub.channel_count
        backlog += hub.backlog_bytes()
    return {"connections": connections, "channels": channels, "backlog_bytes": backlog,
            "redis_connected": int(bool(hubs) and all(hub.connected for hub in hubs)), "hubs": len(hubs)}


def stats() -> Dict[str, Any]:
    """Every number of :func:`exposition`, as a dict (JSON-ready)."""
    m = METRICS
    return {
        "pid": os.getpid(),
        **_hub_states(),
        "handshakes_accepted": m.handshakes_accepted,
        "handshakes_refused": {str(k): v for k, v in sorted(m.handshakes_refused.items())},
        "disconnects": {str(k): v for k, v in sorted(m.disconnects.items())},
        "messages_dispatched": m.messages_dispatched,
        "messages_delivered": m.messages_delivered,
        "messages_published": dict(m.published),
        "publish_failures": dict(m.publish_failures),
        "redis_reconnects": m.redis_reconnects,
        "subscription_gaps": m.subscription_gaps,
        "subscription_gap_seconds": round(m.subscription_gap_seconds, 6),
        "messages_possibly_missed": m.possibly_missed,
        "history_healed": m.history_healed,
        "history_unhealed": m.history_unhealed,
        "recoveries": dict(m.recoveries),
        "dispatch_seconds_sum": m.dispatch_seconds,
        "dispatch_seconds_buckets": dict(zip([*map(str, DISPATCH_BUCKETS), "+Inf"], _cumulative(m.dispatch_counts), strict=True)),
    }


def _cumulative(counts: Sequence[int]) -> List[int]:
    total, out = 0, []
    for count in counts:
        total += count
        out.append(total)
    return out


def _family(lines: List[str], name: str, kind: str, help_: str, samples: Iterable[Tuple[str, float]]) -> None:
    lines.append(f"# HELP {name} {help_}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        lines.append(f"{name}{labels} {value:g}" if isinstance(value, float) else f"{name}{labels} {value}")


def exposition() -> str:
    """The Prometheus text exposition (format 0.0.4) of this process's numbers."""
    s = stats()
    m = METRICS
    out: List[str] = []
    _family(out, "ws4redis_mw_process_info", "gauge", "This worker process (each worker serves its own numbers).",
            [(f'{{pid="{s["pid"]}"}}', 1)])
    _family(out, "ws4redis_mw_connections", "gauge", "Open websockets of this process.", [("", s["connections"])])
    _family(out, "ws4redis_mw_channels", "gauge", "Redis channels this process is subscribed to.", [("", s["channels"])])
    _family(out, "ws4redis_mw_backlog_bytes", "gauge", "Bytes queued for clients that the kernel has not taken, all sockets.",
            [("", s["backlog_bytes"])])
    _family(out, "ws4redis_mw_redis_connected", "gauge", "1 if the subscription connection to Redis is up.",
            [("", s["redis_connected"])])
    _family(out, "ws4redis_mw_handshakes_total", "counter", "Websocket handshakes accepted.", [("", m.handshakes_accepted)])
    _family(out, "ws4redis_mw_handshakes_refused_total", "counter", "Websocket handshakes refused, by HTTP status.",
            [(f'{{status="{k}"}}', v) for k, v in sorted(m.handshakes_refused.items())])
    _family(out, "ws4redis_mw_disconnects_total", "counter", "Websockets closed by the server, by close code.",
            [(f'{{code="{k}"}}', v) for k, v in sorted(m.disconnects.items())])
    _family(out, "ws4redis_mw_messages_received_total", "counter", "Messages received from Redis for local sockets.",
            [("", m.messages_dispatched)])
    _family(out, "ws4redis_mw_messages_delivered_total", "counter", "Messages handed to local sockets (messages x listeners).",
            [("", m.messages_delivered)])
    _family(out, "ws4redis_mw_messages_published_total", "counter",
            "Messages published, by source (socket: a client's; django: RedisPublisher in this process).",
            [(f'{{source="{k}"}}', v) for k, v in sorted(m.published.items())])
    _family(out, "ws4redis_mw_publish_failures_total", "counter", "Publishes that failed because Redis was unavailable.",
            [(f'{{source="{k}"}}', v) for k, v in sorted(m.publish_failures.items())])
    _family(out, "ws4redis_mw_redis_reconnects_total", "counter", "Times the subscription connection came back after a loss.",
            [("", m.redis_reconnects)])
    _family(out, "ws4redis_mw_subscription_gap_seconds_total", "counter",
            "Seconds the subscription connection was down between a loss and the resubscription.",
            [("", m.subscription_gap_seconds)])
    _family(out, "ws4redis_mw_messages_possibly_missed_total", "counter",
            "Upper bound of messages published while this process was not subscribed (Redis' PUBLISH count over each gap).",
            [("", m.possibly_missed)])
    _family(out, "ws4redis_mw_history_healed_total", "counter",
            "Publications read back from a channel's history after a subscription gap and delivered.",
            [("", m.history_healed)])
    _family(out, "ws4redis_mw_history_unhealed_total", "counter",
            "Subscription gaps of a history channel that could not be healed in full (history trimmed, expired or lost).",
            [("", m.history_unhealed)])
    _family(out, "ws4redis_mw_recoveries_total", "counter", "Opted-in clients that gave positions, by outcome.",
            [(f'{{outcome="{k}"}}', v) for k, v in sorted(m.recoveries.items())])
    name = "ws4redis_mw_dispatch_seconds"
    buckets = [(f'{{le="{bound:g}"}}', count) for bound, count in zip(DISPATCH_BUCKETS, _cumulative(m.dispatch_counts)[:-1], strict=True)]
    _family(out, name, "histogram", "Time to hand one Redis message to every local listener (encoding and queueing, not the writes).",
            [])
    for labels, count in [*buckets, ('{le="+Inf"}', m.messages_dispatched)]:
        out.append(f"{name}_bucket{labels} {count}")
    out.append(f"{name}_sum {m.dispatch_seconds:g}")
    out.append(f"{name}_count {m.messages_dispatched}")
    return "\n".join(out) + "\n"


def allowed(address: str, allow: Sequence[str]) -> bool:
    """Whether a client ``address`` is in ``allow`` (addresses, networks, or ``"*"``)."""
    if "*" in allow:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in allow:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def serve(environ: "WSGIEnvironment", start_response: "StartResponse", settings: "Settings") -> List[bytes]:
    """The WSGI answer at ``WS4REDIS_METRICS_URL``: the exposition, or 403 for an address not allowed."""
    if not allowed(from_environ(environ, settings.trusted_proxies).address, settings.metrics_allowed):
        start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"forbidden\n"]
    body = exposition().encode()
    start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
    return [body]
