"""Channel naming and facility validation (pure functions)."""

import pytest

from ws4redis_mw.channels import InvalidFacility, channel_name, validate_facility, validate_prefix


@pytest.mark.parametrize("prefix, audience, member, expected", [
    (None, "broadcast", None, "broadcast:chat"),
    ("ws4redis", "broadcast", None, "ws4redis:broadcast:chat"),
    (None, "user", "john", "user:john:chat"),
    ("p", "group", "admins", "p:group:admins:chat"),
    (None, "session", "abc123", "session:abc123:chat"),
])
def test_channel_names_match_ws4redis(prefix, audience, member, expected):
    assert channel_name(prefix, audience, "chat", member) == expected


@pytest.mark.parametrize("facility", ["", "a:b", "a b", "a\tb", "a\x00b", "a\x7fb", "x" * 256, "a\u2028b", "{x}", "a{x}b", "a}b", "{"])
def test_bad_facility_names_are_refused(facility):
    with pytest.raises(InvalidFacility):
        validate_facility(facility)


@pytest.mark.parametrize("facility", ["chat", "x" * 255, "caf\u00e9", "a/b", "a-b_c.d"])
def test_good_facility_names_pass(facility):
    assert validate_facility(facility) == facility


@pytest.mark.parametrize("prefix", ["{site}", "a{b", "a}b"])
def test_a_prefix_with_braces_is_refused(prefix):
    with pytest.raises(ValueError, match="hash tag"):
        validate_prefix(prefix)


@pytest.mark.parametrize("prefix", [None, "", "site", "site:a", "s\u00eete"])
def test_a_prefix_without_braces_passes(prefix):
    assert validate_prefix(prefix) == prefix
