"""The per-address and per-user socket caps on their own (ws4redis_mw.limits.SocketCounts, no server)."""

from ws4redis_mw.limits import SocketCounts


def test_the_socket_over_the_address_cap_is_refused_and_nothing_counted():
    counts = SocketCounts(max_per_ip=2, max_per_user=None)
    assert counts.acquire("10.0.0.1", None) is None and counts.acquire("10.0.0.1", None) is None
    assert "this address" in counts.acquire("10.0.0.1", None)
    assert counts.open_from("10.0.0.1") == 2
    assert counts.acquire("10.0.0.2", None) is None  # another visitor is not affected


def test_the_user_cap_counts_across_addresses_and_anonymous_sockets_are_not_a_user():
    counts = SocketCounts(max_per_ip=None, max_per_user=1)
    assert counts.acquire("10.0.0.1", "alice") is None
    assert "this user" in counts.acquire("10.0.0.2", "alice")
    assert counts.open_from("10.0.0.2") == 0  # a refusal counts nothing
    assert counts.acquire("10.0.0.2", None) is None and counts.acquire("10.0.0.2", None) is None


def test_a_released_socket_frees_its_slot_and_the_table_forgets_empty_entries():
    counts = SocketCounts(max_per_ip=1, max_per_user=1)
    assert counts.acquire("10.0.0.1", "bob") is None
    counts.release("10.0.0.1", "bob")
    assert counts._per_ip == {} and counts._per_user == {}
    assert counts.acquire("10.0.0.1", "bob") is None
    counts.release("10.0.0.9", "nobody")  # releasing what was never counted changes nothing
    assert counts.open_from("10.0.0.1") == 1
