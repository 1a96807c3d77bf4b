"""The on-demand greenlet: it exists only while there is work."""

import gevent

from ws4redis_mw.ondemand import OnDemand


def test_greenlet_runs_the_work_then_goes_away():
    done = []
    worker = OnDemand(lambda: done.append(1))
    assert not worker.running
    worker.wake()
    assert worker.running
    assert worker.join(1) and done == [1] and not worker.running


def test_waking_a_running_worker_starts_no_second_greenlet():
    queue = [1, 2, 3]
    seen = []

    def work():
        while queue:
            seen.append(queue.pop(0))
            gevent.sleep(0)

    worker = OnDemand(work)
    worker.wake()
    worker.wake()
    queue.append(4)  # queued while it runs: picked up by the same greenlet
    worker.join(1)
    assert seen == [1, 2, 3, 4]


def test_a_failing_work_is_logged_and_the_worker_can_run_again(caplog):
    calls = []

    def work():
        calls.append(1)
        raise RuntimeError("boom")

    worker = OnDemand(work)
    worker.wake()
    worker.join(1)
    worker.wake()
    worker.join(1)
    assert calls == [1, 1] and "failed" in caplog.text


def test_kill_stops_a_blocked_worker():
    worker = OnDemand(lambda: gevent.sleep(10))
    worker.wake()
    gevent.sleep(0)
    worker.kill()
    assert worker.join(1)
