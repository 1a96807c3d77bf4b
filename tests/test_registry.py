"""Who listens to what, and what Redis must be told: the registry on its own."""

from ws4redis_mw.registry import Registry


def test_first_listener_of_a_channel_asks_for_a_subscribe():
    r = Registry()
    assert r.add("a", ["x", "y", "x"]) == ["x", "y"]
    assert r.add("b", ["y", "z"]) == ["z"]


def test_last_listener_leaving_asks_for_an_unsubscribe():
    r = Registry()
    r.add("a", ["x", "y"])
    r.add("b", ["y"])
    assert r.remove("a") == ["x"]
    assert r.remove("b") == ["y"]
    assert r.wanted() == [] and len(r) == 0


def test_removing_an_unknown_listener_does_nothing():
    assert Registry().remove("nobody") == []


def test_confirmation_counts_only_for_wanted_channels():
    r = Registry()
    r.add("a", ["x"])
    r.confirm("x")
    r.confirm("gone")
    assert r.is_subscribed("x") and not r.is_subscribed("gone")


def test_lost_connection_forgets_confirmations_but_not_listeners():
    r = Registry()
    r.add("a", ["x"])
    r.confirm("x")
    r.connection_lost()
    assert not r.is_subscribed("x")
    assert r.wanted() == ["x"] and list(r.listeners("x")) == ["a"]


def test_unsubscribed_channel_is_no_longer_subscribed():
    r = Registry()
    r.add("a", ["x"])
    r.confirm("x")
    r.remove("a")
    r.add("b", ["x"])
    assert not r.is_subscribed("x")


def test_listener_without_channels_is_still_known():
    r = Registry()
    r.add("a", [])
    assert "a" in r and r.all_listeners() == ["a"] and r.channel_count == 0


def test_a_pinned_channel_is_wanted_without_listeners_and_never_unsubscribed():
    r = Registry(pinned=["control"])
    assert r.wanted() == ["control"] and r.channel_count == 0 and len(r) == 0
    r.confirm("control")
    assert r.is_subscribed("control")
    r.add("a", ["x"])
    assert r.wanted() == ["control", "x"]
    assert r.remove("a") == ["x"]
    assert r.wanted() == ["control"] and r.is_subscribed("control")
    r.connection_lost()
    assert not r.is_subscribed("control") and r.wanted() == ["control"]
