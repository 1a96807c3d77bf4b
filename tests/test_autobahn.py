"""The Autobahn WebSocket conformance suite against every server mode.

The fuzzing client runs cases 1-8 and 10 against a facility with
``subscribe-broadcast&publish-broadcast&echo``, so every frame makes the
whole trip: parsed by our codec, published to Redis, delivered by the hub
and written back.  9.* (performance) and 12-13 (compression) are left out.
Every case must end OK, NON-STRICT or INFORMATIONAL; the per-mode table
lives in docs/conformance.md.
"""

from __future__ import annotations

import pytest

from autobahn_suite import autobahn_available, describe_failures, run_fuzzingclient
from conftest import require, start_server
from servers import SERVER_MODES


@pytest.mark.parametrize("mode", SERVER_MODES, ids=lambda mode: mode.name)
def test_autobahn_cases_end_ok_non_strict_or_informational(mode, redis_server, django_setup, workdir):
    available, reason = autobahn_available()
    require(available, f"Autobahn test suite: {reason} (run .ci/install-autobahn)")
    # No kept messages and no heartbeat: the suite expects exactly its own echoes.
    env = {"WS4REDIS_TEST_EXPIRE": "0", "WS4REDIS_TEST_HEARTBEAT": ""}
    server = start_server(mode, redis_server.url, workdir, env)
    try:
        result = run_fuzzingclient(
            f"{server.ws}/ws/autobahn-{mode.name}?subscribe-broadcast&publish-broadcast&echo",
            agent=f"ws4redis-{mode.name}",
            outdir=workdir / f"autobahn-{mode.name}",
            timeout=300,
        )
    finally:
        server.stop()
    summary = result["summary"]
    print(f"Autobahn {mode.name}: {summary}")
    assert summary["FAILED"] == 0 and not result["missing"], describe_failures(result)
