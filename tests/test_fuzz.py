"""Generated hostile input (hypothesis) against a running server, in every mode of ``SERVER_MODES``.

Malformed handshakes (methods, paths, versions, headers, keys, Origins, raw
bytes) and malformed frame sequences after a good handshake.  For every
example: an answer or the end of the connection within a few seconds (no
hang), never a 5xx, and a good client, subscribed all along, still gets a
message published through Redis.  Afterwards: no traceback in the server's
log, and once the server had a moment, no more greenlets, hub listeners or
descriptors than before, and no Redis subscription left on the fuzzed
channels.  Bounded: a fixed number of examples per mode, every socket
operation under a timeout.
"""

from __future__ import annotations

import base64
import collections
import os
import struct
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ws4redis_mw

from helpers import KEY, client_frame, exchange, open_descriptors, recv, server_stats, split_frames, status_of, websocket_exchange

HANDSHAKE_EXAMPLES = 300
FRAME_EXAMPLES = 200
SETTLE = 15.0  # seconds the server gets to free what the fuzzed connections held
#: Statuses that would mean the server (or the backend behind nginx) failed.
FAILURE_STATUSES = {500, 502, 503, 504}

FUZZ = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- what a hostile client sends -------------------------------------------------

_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~!*'", min_size=1, max_size=12)
_odd_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=24)
#: Origins a browser or an attacker may send.
ORIGINS = [b"http://127.0.0.1:9999", b"https://127.0.0.1", b"null", b"http://", b"://", b"http://evil.example",
           b"http://127.0.0.1\x00.evil", b"http://127.0.0.1.evil.example", b"HTTP://127.0.0.1", b"http://[::1",
           b"http://127.0.0.1:0", b"http://127.0.0.1:99999", b"http://127.0.0.1\t", b"http://user@127.0.0.1"]
_flags = ["subscribe-broadcast", "publish-broadcast", "subscribe-user", "publish-user", "subscribe-group",
          "publish-group", "subscribe-session", "publish-session", "echo", "token", "token=x"]


def _odd(odd) -> st.SearchStrategy:
    """One of ``odd``, any text, any bytes (no line end), or ``None`` (left out)."""
    return st.one_of(st.sampled_from(odd), st.sampled_from(odd), st.none(), _odd_text.map(str.encode),
                     st.binary(max_size=24).filter(lambda b: b"\r" not in b and b"\n" not in b))


_FIELDS = {
    b"Host": (b"127.0.0.1", [b"localhost", b"", b"evil.example", b"127.0.0.1:1", b"[::1", b"127.0.0.1, evil"]),
    b"Upgrade": (b"websocket", [b"WebSocket", b"websocket, h2c", b"h2c", b""]),
    b"Connection": (b"Upgrade", [b"keep-alive, Upgrade", b"upgrade", b"close", b""]),
    b"Sec-WebSocket-Key": (KEY.encode(), [b"", b"abc", b"=====", b"dGhlIHNhbXBsZSBub25jZQ", b"AAAAAAAAAAAAAAAAAAAAAA==",
                                          base64.b64encode(bytes(15)), base64.b64encode(bytes(17))]),
    b"Sec-WebSocket-Version": (b"13", [b"8", b"13, 8", b" 13", b"", b"-1", b"1" * 40]),
    b"Origin": (b"http://127.0.0.1", []),  # filled below from ORIGINS
}
_METHODS = [b"POST", b"HEAD", b"PUT", b"OPTIONS", b"get", b"DELETE", b""]
_VERSIONS = [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"http/1.1", b"HTTP/1", b"HTTP/1.1x", b"HTTP/11.1", b"FOO", b""]


@st.composite
def paths(draw, prefix: str, faulty: bool) -> bytes:
    if not faulty:
        rest = draw(_token)
        # A channel anybody may have first (else most are refused for having none), then anything.
        query = ["subscribe-broadcast"] + draw(st.lists(st.one_of(st.sampled_from(_flags[:-2]), _token), max_size=4))
        return f"/ws/{prefix}{rest}?{'&'.join(query)}".encode()
    kind = draw(st.integers(0, 3))
    if kind == 3:  # no channel, unknown flags, tokens
        query = draw(st.lists(st.one_of(st.sampled_from(_flags), _token), max_size=5))
        return f"/ws/{prefix}{draw(_token)}?{'&'.join(query)}".encode()
    if kind == 0:
        return draw(st.sampled_from(["/ws/", "/ws", "/", "/hello", "*", "http://127.0.0.1/ws/x", "/ws//x", "/ws/../hello",
                                     "/WS/x", "/ws/%00", "/ws/%zz", "/ws/:x", "/ws/a%3Ab", "/ws/\u00e9", "/ws/" + "x" * 300,
                                     "/ws/a b", "/ws/a\tb", "/ws/x?" + "&".join(_flags) * 20])).encode("utf-8")
    if kind == 1:
        return f"/ws/{prefix}".encode() + draw(_odd_text.map(str.encode))
    return draw(st.binary(max_size=40)).replace(b" ", b"").replace(b"\r", b"").replace(b"\n", b"") or b"/"


@st.composite
def handshakes(draw, prefix: str) -> bytes:
    """A handshake with none (a third of them), or one to three fields made odd."""
    fields = ["method", "path", "version", *_FIELDS]
    faults = set() if draw(st.integers(0, 2)) == 0 else draw(st.sets(st.sampled_from(fields), min_size=1, max_size=3))
    method = draw(st.one_of(st.sampled_from(_METHODS), _token.map(str.encode))) if "method" in faults else b"GET"
    version = draw(st.sampled_from(_VERSIONS)) if "version" in faults else b"HTTP/1.1"
    headers = []
    for name, (good, odd) in _FIELDS.items():
        value = draw(_odd(odd or ORIGINS)) if name in faults else good
        if value is not None:
            headers.append((name, value))
    forbidden = {"content-length", "transfer-encoding", "expect"}  # a body announced and not sent is a legitimate wait
    extra = draw(st.lists(st.tuples(_token.filter(lambda n: n.lower() not in forbidden).map(str.encode),
                                    st.one_of(st.just(b"x"), _odd([b"", b"\x00", b"\xff\xfe"]).map(lambda v: v or b""))),
                          max_size=3))
    headers += extra
    if draw(st.integers(0, 9)) == 0:  # a header repeated, or folded over two lines
        name, value = draw(st.sampled_from(headers))
        headers.append((name, value + (b"\r\n forged: line" if draw(st.booleans()) else b"")))
    head = method + b" " + draw(paths(prefix, "path" in faults)) + b" " + version + b"\r\n"
    return head + b"".join(n + b": " + v + b"\r\n" for n, v in headers) + b"\r\n"


_payloads = st.one_of(st.binary(max_size=200), _odd_text.map(str.encode), st.sampled_from([b"--heartbeat--", b"", b"\xff"]))


@st.composite
def messages(draw) -> bytes:
    """A well-formed message (text or binary, whole or in fragments, a ping or pong between)."""
    opcode, payload = draw(st.sampled_from([1, 1, 2])), draw(_payloads)
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    pieces = [payload[x:y] for x, y in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    out = b""
    for i, piece in enumerate(pieces):
        out += client_frame(opcode if i == 0 else 0, piece, fin=i == len(pieces) - 1)
        if i < len(pieces) - 1 and draw(st.integers(0, 3)) == 0:
            out += client_frame(draw(st.sampled_from([9, 10])), draw(st.binary(max_size=20)))
    return out


@st.composite
def frames(draw) -> bytes:
    """Any frame: opcode, FIN, reserved bits, mask or none."""
    opcode = draw(st.one_of(st.sampled_from([1, 1, 2, 0, 9, 10, 8]), st.integers(0, 15)))
    payload = draw(_payloads)
    rsv = draw(st.sampled_from([0, 0, 0, 0, 0x40, 0x20, 0x10]))
    mask = draw(st.sampled_from([b"\x37\xfa\x21\x3d"] * 4 + [b"\x00\x00\x00\x00"]))
    frame = client_frame(opcode, payload, fin=draw(st.booleans()) or opcode >= 8, rsv=rsv, mask=mask)
    if mask == b"\x00\x00\x00\x00" and draw(st.booleans()):  # unmasked: no mask bit, no key
        header_end = len(frame) - len(payload) - 4
        frame = bytes([frame[0], frame[1] & 0x7F]) + frame[2:header_end] + payload
    return frame


@st.composite
def frame_sequences(draw) -> bytes:
    """Mostly good messages, some hostile pieces among them, and a close frame (1000) at the end."""
    items = []
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.integers(0, 11))
        if kind <= 5:
            items.append(draw(messages()))
        elif kind <= 7:
            items.append(draw(frames()))
        elif kind == 8:  # a close frame with any code and reason
            code = draw(st.integers(0, 65535))
            items.append(client_frame(8, struct.pack("!H", code) + draw(st.binary(max_size=30))))
        elif kind == 9:  # a header announcing much more than follows
            length = draw(st.sampled_from([126, 65535, 70000, 2**31, 2**63 - 1]))
            header = struct.pack("!BB", 0x81, 0x80 | 127) + struct.pack("!Q", length) if length > 65535 else \
                struct.pack("!BBH", 0x81, 0x80 | 126, length)
            items.append(header + b"\x01\x02\x03\x04" + draw(st.binary(max_size=50)))
        elif kind == 10:  # many empty fragments
            count = draw(st.integers(1, 200))
            items.append(client_frame(1, b"", fin=False) + client_frame(0, b"", fin=False) * count)
        else:  # raw bytes
            items.append(draw(st.binary(max_size=64)))
    return b"".join(items) + client_frame(8, struct.pack("!H", 1000))


# -- the checks around the examples -----------------------------------------------

def tracebacks(log: str) -> list:
    """Each traceback in ``log`` (chained ones joined into one), up to and including its exception line."""
    chained = ("During handling of the above exception", "The above exception was the direct cause")
    found, lines, i = [], log.splitlines(), 0
    while i < len(lines):
        if not lines[i].lstrip().startswith("Traceback (most recent call last):"):
            i += 1
            continue
        start = i
        while True:
            i += 1
            while i < len(lines) and lines[i].startswith((" ", "\t")):
                i += 1
            i += 1  # the exception line
            rest = [j for j in range(i, min(i + 5, len(lines))) if lines[j].strip()]
            if rest and lines[rest[0]].startswith(chained) and rest[1:] and "Traceback" in lines[rest[1]]:
                i = rest[1]
                continue
            break
        found.append("\n".join(lines[start:i]))
    return found


#: Tracebacks logged by the servers' own code before our middleware runs, each
#: (what is in it, why it is excused).  Nothing else is.
KNOWN_UPSTREAM = [
    (("_check_http_version", "IndexError: tuple index out of range"),
     "gevent's pywsgi (our runner, gunicorn's gevent_pywsgi worker, runserver) for a request line whose "
     "version has no minor number (HTTP/1), then answers 400"),
    (("geventwebsocket/handler.py", "a bytes-like object is required, not 'str'"),
     "gevent-websocket's handler writes a str body (Python 2 code) when it refuses an upgrade itself "
     "(HTTP/1.0, no Sec-WebSocket-Version), then drops the connection"),
    (("geventwebsocket/handler.py", "in upgrade_connection", "b64decode"),
     "gevent-websocket's handler decodes Sec-WebSocket-Key before our middleware runs and lets the "
     "error out: pywsgi answers 500"),
]


#: Our package's own folder: a traceback through one of its modules is never excused.  Not the
#: name alone: a clone in a folder named ws4redis_mw (git's default) has it in every path.
PACKAGE_DIR = os.path.dirname(os.path.abspath(ws4redis_mw.__file__)) + os.sep


def is_known_upstream(traceback: str) -> bool:
    return PACKAGE_DIR not in traceback and any(all(part in traceback for part in parts) for parts, _why in KNOWN_UPSTREAM)


def is_known_upstream_500(server) -> bool:
    """gevent-websocket's handler answers 500 for a Sec-WebSocket-Key it cannot decode, before our
    middleware runs (see KNOWN_UPSTREAM).  A 500 of ours would log a traceback through
    ws4redis_mw, which the log check refuses in every mode."""
    return server.mode.name == "gunicorn-geventwebsocket"


class GoodClient:
    """A websocket subscribed to a broadcast channel for the whole test; proves the server still serves."""

    def __init__(self, server, redis, facility: str):
        from websockets.sync.client import connect

        self.redis, self.channel, self.count = redis, f"broadcast:{facility}", 0
        self.unexpected: list = []
        self.ws = connect(f"{server.ws}/ws/{facility}?subscribe-broadcast", open_timeout=10, close_timeout=2)

    def round_trip(self) -> None:
        self.count += 1
        message = f"still served {self.count}"
        deadline = time.monotonic() + 10
        while not self.redis.publish(self.channel, message):  # subscribed yet (the hub confirms before the 101)?
            assert time.monotonic() < deadline, "the good client's channel has no subscriber"
            time.sleep(0.05)
        received = recv(self.ws, timeout=10)
        if received != message:
            self.unexpected.append(received)
        assert received == message, self.unexpected

    def close(self) -> None:
        self.ws.close()


def measure(server) -> dict:
    stats = server_stats(server)
    return {"greenlets": stats["greenlets"], "listeners": sum(h["listeners"] for h in stats["hubs"]),
            "descriptors": open_descriptors(server)}


def assert_nothing_leaked(server, redis, before: dict, prefix: str) -> dict:
    deadline = time.monotonic() + SETTLE
    while True:
        after = measure(server)
        channels = redis.pubsub_channels(f"*{prefix}*")
        clean = all(after[k] <= before[k] for k in before) and len(channels) <= 1  # the good client's
        if clean or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert after["listeners"] <= before["listeners"], (before, after)
    assert after["greenlets"] <= before["greenlets"], (before, after)
    assert after["descriptors"] <= before["descriptors"], (before, after)
    assert len(channels) <= 1, channels
    return after


@pytest.fixture
def fuzz_target(server, redis_server):
    """(server, redis client, channel prefix, good client); afterwards, the leak and log checks."""
    prefix = "fz" + uuid.uuid4().hex[:8]
    redis = redis_server.client()
    log_start = len(server.log_text())
    good = GoodClient(server, redis, prefix + "good")
    good.round_trip()
    time.sleep(0.5)
    before = measure(server)
    started = time.monotonic()
    yield server, redis, prefix, good
    good.round_trip()
    after = assert_nothing_leaked(server, redis, before, prefix)
    good.close()
    found = tracebacks(server.log_text()[log_start:])
    unexpected = [tb for tb in found if not is_known_upstream(tb)]
    assert not unexpected, "\n\n".join(unexpected)
    print(f"\n{server.mode.name}: {len(found)} tracebacks of the server's own code before ours (KNOWN_UPSTREAM)")
    print(f"\n{server.mode.name}: {good.count - 2} examples in {time.monotonic() - started:.1f} s, before {before}, after {after}")


def test_malformed_handshakes_get_no_5xx_and_leave_nothing_behind(fuzz_target):
    server, _redis, prefix, good = fuzz_target

    @settings(max_examples=HANDSHAKE_EXAMPLES, **FUZZ)
    @given(st.one_of(handshakes(prefix), handshakes(prefix), st.binary(max_size=300).map(lambda b: (b"raw", b))))
    def one(request):
        if isinstance(request, tuple):  # raw bytes: shut our side so that a server waiting for more sees the end
            response, ended = exchange(server.port, request[1], until_headers=False)
        else:
            response, ended = exchange(server.port, request)
        assert ended, f"no answer and no end of connection in time to {request!r}"
        status = status_of(response)
        if status == 500 and is_known_upstream_500(server):
            status = -500  # counted apart: gevent-websocket's, not ours
        assert status not in FAILURE_STATUSES, (request, response[:300])
        statuses[status] += 1
        good.round_trip()

    statuses: collections.Counter = collections.Counter()
    one()
    print(f"\n{server.mode.name}: statuses {dict(statuses)} (0: none, the connection ended; -500: gevent-websocket's)")


def test_malformed_frame_sequences_close_cleanly_and_leave_nothing_behind(fuzz_target):
    server, _redis, prefix, good = fuzz_target
    path = f"/ws/{prefix}frames?subscribe-broadcast&publish-broadcast&echo"

    codes: collections.Counter = collections.Counter()

    @settings(max_examples=FRAME_EXAMPLES, **FUZZ)
    @given(frame_sequences())
    def one(data):
        received, ended = websocket_exchange(server.port, path, data, timeout=8)
        assert ended, f"the connection did not end in time after {data[:200]!r}"
        frames, _cut = split_frames(received)  # a reset may cut the tail: not judged
        assert all(opcode in (1, 2, 8, 9, 10) for opcode, _ in frames), frames
        closes = [i for i, (opcode, _) in enumerate(frames) if opcode == 8]
        assert closes in ([], [len(frames) - 1]), f"a frame after the close frame, or two: {frames}"
        if closes:
            payload = frames[-1][1]
            assert len(payload) != 1, payload
            code = int.from_bytes(payload[:2], "big") if payload else 1000
            assert 1000 <= code <= 4999 and code not in (1004, 1005, 1006, 1015), code
            codes[code] += 1
        good.round_trip()

    one()
    print(f"\n{server.mode.name}: server close codes {dict(codes)}")


def test_the_upstream_filter_excuses_a_clone_folder_named_after_the_package():
    upstream = ('File "/home/me/ws4redis_mw/.venv/lib/python3.13/site-packages/geventwebsocket/handler.py", line 1, '
                "in upgrade_connection\n    base64.b64decode(key)")
    assert is_known_upstream(upstream)
    ours = upstream + f'\n  File "{PACKAGE_DIR}middleware.py", line 9'
    assert not is_known_upstream(ours)
