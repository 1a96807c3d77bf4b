"""Metrics: counted once per Redis message, served as Prometheus text by the middleware, the same numbers from stats()."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ws4redis_mw import metrics

from helpers import start, stats

SAMPLE = re.compile(r'^[a-z_][a-z0-9_]*(\{[a-z]+="[^"]*"(,[a-z]+="[^"]*")*\})? -?[0-9.e+-]+$')


def scrape(server, path="/metrics"):
    with urllib.request.urlopen(server.http + path, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode()


def sample(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, f"{name} not in the exposition"
    return float(match.group(1))


def test_exposition_is_valid_prometheus_text():
    metrics.METRICS.dispatched(3, 0.00002)
    text = metrics.exposition()
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line), line
    assert 'ws4redis_mw_dispatch_seconds_bucket{le="+Inf"}' in text


@pytest.mark.parametrize("address, allow, allowed", [
    ("127.0.0.1", ["127.0.0.1", "::1"], True), ("10.1.2.3", ["10.0.0.0/8"], True), ("10.1.2.3", ["127.0.0.1"], False),
    ("::1", ["::1"], True), ("", ["127.0.0.1"], False), ("192.0.2.1", ["*"], True),
])
def test_metrics_allow_list_takes_addresses_and_networks(address, allow, allowed):
    assert metrics.allowed(address, allow) is allowed


@pytest.mark.parametrize("mode_name", ["pywsgi", "uwsgi"])
def test_metrics_url_counts_connections_deliveries_refusals_and_closes(mode_name, own_redis, django_setup, workdir):
    server = start(mode_name, own_redis, workdir, WS4REDIS_TEST_HEARTBEAT="", WS4REDIS_TEST_MAX_MESSAGE_SIZE="100")
    try:
        sockets = [connect(f"{server.ws}/ws/m?subscribe-broadcast&publish-broadcast", open_timeout=5) for _ in range(3)]
        with pytest.raises(InvalidStatus):
            connect(f"{server.ws}/ws/a:b?subscribe-broadcast", open_timeout=5)
        own_redis.client().publish("broadcast:m", "hello")
        assert [ws.recv(timeout=5) for ws in sockets] == ["hello"] * 3
        sockets[0].send("x" * 200)  # too big: the server closes with 1009
        with pytest.raises(ConnectionClosed):
            sockets[0].recv(timeout=5)
        sockets[1].send("from a client")
        assert sockets[2].recv(timeout=5) == "from a client"

        text = scrape(server)
        assert sample(text, "ws4redis_mw_connections") == 2
        assert sample(text, "ws4redis_mw_handshakes_total") == 3
        assert sample(text, 'ws4redis_mw_handshakes_refused_total{status="400"}') == 1
        assert sample(text, 'ws4redis_mw_disconnects_total{code="1009"}') == 1
        assert sample(text, "ws4redis_mw_messages_delivered_total") == 3 + 2  # hello x 3, the client's message x 2
        assert sample(text, 'ws4redis_mw_messages_published_total{source="socket"}') == 1
        assert sample(text, "ws4redis_mw_redis_connected") == 1
        assert sample(text, "ws4redis_mw_dispatch_seconds_count") == 2
        assert sample(text, "ws4redis_mw_redis_reconnects_total") == 0
        numbers = stats(server)["metrics"]  # the same numbers from stats()
        assert numbers["connections"] == 2 and numbers["messages_delivered"] == 5
        assert numbers["handshakes_refused"] == {"400": 1} and numbers["disconnects"] == {"1009": 1}
        for ws in sockets:
            ws.close()
    finally:
        server.stop()


def test_metrics_url_refuses_addresses_not_allowed(own_redis, django_setup, workdir):
    server = start("pywsgi", own_redis, workdir, WS4REDIS_TEST_METRICS_ALLOWED="10.0.0.0/8")
    try:
        with pytest.raises(urllib.error.HTTPError) as info:
            scrape(server)
        assert info.value.code == 403
    finally:
        server.stop()


def test_grafana_dashboard_uses_only_metrics_that_exist():
    from pathlib import Path

    dashboard = (Path(__file__).resolve().parent.parent / "examples" / "deploy" / "grafana-dashboard.json").read_text()
    families = set(re.findall(r"^# TYPE (\S+) ", metrics.exposition(), re.M))
    used = set(re.findall(r"ws4redis_mw_[a-z_]+", dashboard)) - {"ws4redis_mw_dispatch_seconds_bucket"}
    assert used and used <= families, used - families
