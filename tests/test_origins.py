"""The Origin rules on their own (no server)."""

import pytest

from ws4redis_mw.origins import Origin, OriginPolicy, parse_host, parse_origin

OWN = parse_host("127.0.0.1:8000", secure=False)


def test_default_ports_are_implied():
    assert parse_origin("https://Example.com") == Origin("https", "example.com", 443)
    assert parse_host("example.com", secure=True) == parse_origin("https://example.com:443")


@pytest.mark.parametrize("value", [
    "null", "example.com", "ftp://example.com", "http://[::1", "http://a:b@example.com", "http://x.com/path", "http://x.com:99999",
])
def test_anything_but_scheme_host_port_is_not_an_origin(value):
    with pytest.raises(ValueError):
        parse_origin(value)


def test_own_origin_is_allowed_and_nothing_else_by_default():
    policy = OriginPolicy()
    assert policy.allows("http://127.0.0.1:8000", OWN)
    for other in ("http://127.0.0.1:9999", "https://127.0.0.1:8000", "http://localhost:8000", "null", "http://[::1"):
        assert not policy.allows(other, OWN), other


def test_exact_and_wildcard_entries():
    policy = OriginPolicy(["https://app.example.com"], trusted=["https://*.example.org"])
    assert policy.allows("https://app.example.com", OWN)
    assert policy.allows("https://a.b.example.org", OWN)
    assert not policy.allows("https://example.org", OWN)  # the wildcard is for subdomains
    assert not policy.allows("http://a.example.org", OWN)  # same scheme only
    assert not policy.allows("https://evil-example.org", OWN)


def test_star_allows_any_and_a_callable_decides():
    assert OriginPolicy(["*"]).allows("http://anything.test", OWN)
    policy = OriginPolicy(lambda origin: origin.endswith(".trusted.test"))
    assert policy.allows("https://a.trusted.test", OWN) and not policy.allows("https://b.test", OWN)


def test_unusable_host_header_allows_no_origin():
    assert parse_host("bad host", secure=False) is None
    assert not OriginPolicy().allows("http://127.0.0.1:8000", None)
