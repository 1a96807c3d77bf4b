"""The bound of what a subscription gap swallowed, from Redis' own count of publications (no I/O)."""

from ws4redis_mw.gaps import SNAPSHOT_INTERVAL, PublishCount, possibly_missed


def test_possibly_missed_bounds_a_gap_from_the_readings_of_one_redis():
    readings = [("a", 100, 1.0), ("a", 150, 2.0), ("a", 180, 3.0)]
    assert possibly_missed(readings, 2.5, ("a", 400, 5.0)) == 250  # from the last reading before the subscription last heard
    assert possibly_missed(readings, 0.5, ("a", 400, 5.0)) is None  # no reading predates the loss
    assert possibly_missed(readings, 2.5, ("b", 30, 5.0)) == 30  # restarted: its whole new count
    assert possibly_missed(readings, 2.5, ("a", 90, 5.0)) == 0  # CONFIG RESETSTAT: never negative
    # A cluster master new in the slot map (nothing heard of it): whole count, or since its last reading as a master.
    assert possibly_missed([], None, ("c", 42, 5.0)) == 42
    assert possibly_missed(readings, None, ("a", 400, 5.0)) == 220


def test_a_gap_keeps_its_start_until_it_ends():
    count = PublishCount()
    count.lose(10.0, 9.5)
    count.lose(11.0, 10.5)  # lost again before resubscribing: still the first gap
    assert count.end_gap() == (10.0, 9.5)
    assert count.end_gap() == (None, 9.5)  # no gap open any more


def test_readings_are_due_once_per_interval():
    count = PublishCount()
    assert count.reading_due(100.0)
    assert not count.reading_due(100.0 + SNAPSHOT_INTERVAL / 2)
    assert count.reading_due(100.0 + SNAPSHOT_INTERVAL)
