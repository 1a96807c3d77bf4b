"""Which master serves a key's slot: the cluster's slot map on its own (no Redis)."""

import pytest
from redis.crc import key_slot

from ws4redis_mw.cluster import SLOTS, SlotMap
from ws4redis_mw.commands import RedisUnavailable

A, B = ("127.0.0.1", 7000), ("127.0.0.1", 7001)


def test_each_key_goes_to_the_master_of_its_slot_with_hash_tags_honoured():
    slots = SlotMap([(0, 8191, A), (8192, SLOTS - 1, B)])
    for key in ("broadcast:news", "user:ålice:{x}", "a{tag}b", b"bytes"):
        slot = key_slot(key.encode() if isinstance(key, str) else key)
        assert slots.master_of(key) == (A if slot <= 8191 else B)
    assert slots.master_of("{tag}one") == slots.master_of("x{tag}two")  # one tag, one slot


def test_a_slot_no_master_serves_is_redis_unavailable():
    slots = SlotMap([(0, 100, A)])
    key = next(k for k in (f"k{i}" for i in range(1000)) if key_slot(k.encode()) > 100)
    with pytest.raises(RedisUnavailable, match="no master serves"):
        slots.master_of(key)


def test_more_than_255_masters_each_keep_their_slots():
    masters = [("127.0.0.1", 10000 + i) for i in range(300)]
    slots = SlotMap([(i * 50, i * 50 + 49, master) for i, master in enumerate(masters)])
    key = next(k for k in (f"k{i}" for i in range(100000)) if 299 * 50 <= key_slot(k.encode()) < 300 * 50)
    assert slots.master_of(key) == masters[299]
    assert len(slots.masters) == 300


def test_maps_are_equal_by_their_ranges_whatever_their_order():
    assert SlotMap([(0, 9, A), (10, 19, B)]) == SlotMap([(10, 19, B), (0, 9, A)])
    assert SlotMap([(0, 9, A)]) != SlotMap([(0, 9, B)])
