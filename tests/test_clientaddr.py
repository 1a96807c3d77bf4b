"""The visitor's address through trusted proxies (clientaddr.py): fast, no server."""

from __future__ import annotations

import logging

import pytest

from ws4redis_mw import metrics
from ws4redis_mw.clientaddr import CLIENT_KEY, Client, TrustedProxies, from_environ, resolve, trusted_proxies
from ws4redis_mw.settings import Settings

DEFAULT = TrustedProxies()


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "", "web.socket", "0.0.0.0"])
def test_a_loopback_or_unix_socket_peer_is_trusted_for_one_hop_by_default(peer):
    assert resolve(peer, "6.6.6.6, 203.0.113.7", None, DEFAULT).address == "203.0.113.7"


@pytest.mark.parametrize("peer", ["203.0.113.9", "10.0.0.1", "::ffff:10.0.0.1", "2001:db8::1"])
def test_a_forged_forwarded_for_from_another_peer_changes_nothing(peer):
    client = resolve(peer, "127.0.0.1", "https", DEFAULT)
    assert client.address == peer.replace("::ffff:", "") and not client.secure and client.problem is None


def test_an_ipv4_mapped_peer_counts_as_its_ipv4_address():
    assert resolve("::ffff:203.0.113.9", None, None, DEFAULT).address == "203.0.113.9"


def test_a_trusted_peer_without_the_header_is_itself():
    assert resolve("127.0.0.1", None, None, DEFAULT) == Client("127.0.0.1")
    assert resolve("127.0.0.1", "  ", None, DEFAULT) == Client("127.0.0.1")


@pytest.mark.parametrize("header", ["nonsense", "203.0.113.7:8080", "1.2.3.4, ", "1.2.3.4, unknown", "\x1b[2J"])
def test_a_malformed_forwarded_for_falls_back_to_the_peer_with_a_problem(header):
    client = resolve("127.0.0.1", header, None, DEFAULT)
    assert client.address == "127.0.0.1" and client.problem


def test_fewer_entries_than_hops_falls_back_to_the_peer():
    client = resolve("10.0.0.2", "203.0.113.7", None, trusted_proxies(2))
    assert client.address == "10.0.0.2" and "fewer than the 2" in (client.problem or "")


def test_a_count_of_hops_trusts_every_peer_for_that_many_entries():
    assert resolve("10.0.0.2", "6.6.6.6, 203.0.113.7, 10.0.0.1", None, trusted_proxies(2)).address == "203.0.113.7"


def test_zero_hops_or_an_empty_list_trusts_no_peer():
    for setting in (0, []):
        assert resolve("127.0.0.1", "203.0.113.7", "https", trusted_proxies(setting)) == Client("127.0.0.1")
    assert resolve("", "203.0.113.7", None, trusted_proxies(0)).address == ""


def test_a_list_trusts_its_networks_and_unix_only_if_named():
    trust = trusted_proxies(["10.0.0.0/8", "192.0.2.1"])
    assert resolve("10.1.2.3", "203.0.113.7", None, trust).address == "203.0.113.7"
    assert resolve("192.0.2.1", "203.0.113.7", None, trust).address == "203.0.113.7"
    assert resolve("127.0.0.1", "203.0.113.7", None, trust).address == "127.0.0.1"
    assert resolve("", "203.0.113.7", None, trust).address == ""
    assert resolve("0.0.0.0", "203.0.113.7", None, trust).address == "0.0.0.0"  # uWSGI's http-socket on a unix socket
    assert resolve("", "203.0.113.7", None, trusted_proxies(["unix"])).address == "203.0.113.7"


def test_forwarded_proto_https_from_a_trusted_peer_is_secure():
    assert resolve("", "203.0.113.7", "https", DEFAULT).secure
    assert resolve("", "203.0.113.7", "http, https", DEFAULT).secure
    assert not resolve("", "203.0.113.7", "https, http", DEFAULT).secure


@pytest.mark.parametrize("value", [-1, True, "127.0.0.1", ["not-an-address"], 1.5, {"hops": 1}])
def test_a_bad_setting_is_refused_at_startup(value):
    with pytest.raises(ValueError):
        trusted_proxies(value)
    with pytest.raises(ValueError):
        Settings(trusted_proxies=value)


def test_settings_keep_the_setting_parsed():
    assert Settings().trusted_proxies == DEFAULT
    assert Settings(trusted_proxies=["10.0.0.0/8"]).trusted_proxies.hops == 1


def test_from_environ_logs_a_malformed_header_once_and_keeps_its_answer(caplog):
    environ = {"REMOTE_ADDR": "", "HTTP_X_FORWARDED_FOR": "evil\nline", "PATH_INFO": "/ws/x"}
    with caplog.at_level(logging.WARNING, logger="ws4redis_mw"):
        assert from_environ(environ, DEFAULT).address == ""
        assert from_environ(environ, DEFAULT) is environ[CLIENT_KEY]
    assert len(caplog.records) == 1 and "\n" not in caplog.records[0].getMessage()


def _metrics_status(environ: dict) -> str:
    statuses = []
    metrics.serve(environ, lambda status, headers: statuses.append(status), Settings())
    return statuses[0]


def test_metrics_answer_the_forwarded_address_from_a_trusted_proxy():
    assert _metrics_status({"REMOTE_ADDR": "", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}).startswith("200")
    assert _metrics_status({"REMOTE_ADDR": "", "HTTP_X_FORWARDED_FOR": "127.0.0.1, 127.0.0.9"}).startswith("403")


def test_metrics_refuse_a_forged_loopback_from_an_untrusted_peer():
    assert _metrics_status({"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "127.0.0.1"}).startswith("403")
