"""The client protocol, end to end, against every server mode in ``SERVER_MODES``.

Each test talks to a real server process over a real websocket and to a real
redis-server; refusals are checked the way the mode can express them (an
HTTP status before the upgrade, or a close code after it).
"""

from __future__ import annotations

import socket
import threading
import uuid

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from helpers import HEARTBEAT, KEY, TIMEOUT, assert_silent, client_frame, masked_frame, raw_handshake, raw_websocket, read_close_code, recv  # noqa: F401


def facility() -> str:
    return "f" + uuid.uuid4().hex[:12]


def assert_closed_with(ws, code: int) -> None:
    with pytest.raises(ConnectionClosed) as info:
        for _ in range(10):
            ws.recv(timeout=TIMEOUT)
    assert info.value.rcvd is not None, "no close frame received"
    assert info.value.rcvd.code == code, info.value.rcvd


def assert_refused(server, connect, path: str, status: int, close_code: int, **kwargs) -> str:
    """The handshake is refused with ``status`` (or, after an early upgrade, closed with ``close_code``)."""
    if server.mode.refuses_after_upgrade:
        ws = connect(path, **kwargs)
        assert_closed_with(ws, close_code)
        return ""
    with pytest.raises(InvalidStatus) as info:
        connect(path, **kwargs)
    response = info.value.response
    assert response.status_code == status, response
    return response.body.decode()


# -- plain HTTP goes to Django untouched ----------------------------------------

def test_plain_request_reaches_django_with_status_and_headers(http):
    status, headers, body = http.request("/hello")
    assert (status, body) == (203, b"hello from django")
    assert headers["X-Custom"] == "kept"


def test_streaming_response_is_passed_through(http):
    status, _, body = http.request("/stream")
    assert status == 200 and body == b"chunk0\nchunk1\nchunk2\n"


def test_plain_http_to_websocket_prefix_gets_426(http):
    status, headers, body = http.request("/ws/foobar?subscribe-broadcast")
    assert status == 426
    assert headers["Upgrade"] == "websocket"
    assert b"websocket" in body


# -- broadcast, echo, heartbeat, persistence ------------------------------------

def test_broadcast_from_django_reaches_every_subscriber(connect, http):
    name = facility()
    a = connect(f"/ws/{name}?subscribe-broadcast")
    b = connect(f"/ws/{name}?subscribe-broadcast")
    http.publish(name, "Hello", broadcast=True)
    assert recv(a) == "Hello" and recv(b) == "Hello"


def test_client_publish_reaches_other_subscribers_but_not_itself_without_echo(connect):
    name = facility()
    sender = connect(f"/ws/{name}?subscribe-broadcast&publish-broadcast")
    other = connect(f"/ws/{name}?subscribe-broadcast")
    sender.send("from sender")
    assert recv(other) == "from sender"
    assert_silent(sender)


def test_echo_flag_returns_own_message(connect):
    name = facility()
    ws = connect(f"/ws/{name}?subscribe-broadcast&publish-broadcast&echo")
    ws.send("echo me")
    assert recv(ws) == "echo me"


def test_without_echo_same_text_from_another_client_still_arrives(connect):
    name = facility()
    a = connect(f"/ws/{name}?subscribe-broadcast&publish-broadcast")
    b = connect(f"/ws/{name}?subscribe-broadcast&publish-broadcast")
    a.send("same")
    assert recv(b) == "same"
    b.send("same")
    assert recv(a) == "same"


def test_heartbeat_is_answered_and_never_published(connect):
    name = facility()
    ws = connect(f"/ws/{name}?subscribe-broadcast&publish-broadcast")
    listener = connect(f"/ws/{name}?subscribe-broadcast")
    ws.send(HEARTBEAT)
    assert ws.recv(timeout=TIMEOUT) == HEARTBEAT
    assert_silent(listener)


def test_server_sends_heartbeat_when_idle(connect):
    ws = connect(f"/ws/{facility()}?subscribe-broadcast")
    assert ws.recv(timeout=8) == HEARTBEAT


def test_kept_message_is_sent_first_to_a_later_subscriber(connect, http):
    name = facility()
    http.publish(name, "kept for later", broadcast=True)
    ws = connect(f"/ws/{name}?subscribe-broadcast")
    assert recv(ws) == "kept for later"


def test_message_published_with_expire_zero_is_not_kept(connect, http):
    name = facility()
    http.post_json("/publish", {"facility": name, "message": "gone", "broadcast": True, "expire": 0})
    ws = connect(f"/ws/{name}?subscribe-broadcast")
    assert_silent(ws)


def test_binary_message_stays_binary(connect):
    name = facility()
    sender = connect(f"/ws/{name}?publish-broadcast")
    receiver = connect(f"/ws/{name}?subscribe-broadcast")
    sender.send(b"\xff\x00binary")
    assert recv(receiver) == b"\xff\x00binary"


def test_unknown_query_flags_are_ignored(connect, http):
    name = facility()
    ws = connect(f"/ws/{name}?subscribe-broadcast&no-such-flag&x=1")
    http.publish(name, "still works", broadcast=True)
    assert recv(ws) == "still works"


# -- user, group and session audiences -----------------------------------------

def test_user_message_reaches_only_that_user(connect, server):
    from conftest import Http

    alice, bob = Http(server.http), Http(server.http)
    alice_name, bob_name = "alice" + uuid.uuid4().hex[:6], "bob" + uuid.uuid4().hex[:6]
    alice.login(alice_name)
    bob.login(bob_name)
    name = facility()
    ws_alice = connect(f"/ws/{name}?subscribe-user", cookie=alice.cookie_header())
    ws_bob = connect(f"/ws/{name}?subscribe-user", cookie=bob.cookie_header())
    alice.publish(name, "for alice", users=[alice_name])
    assert recv(ws_alice) == "for alice"
    assert_silent(ws_bob)


def test_group_message_reaches_group_members_from_session(connect, server):
    from conftest import Http

    member, outsider = Http(server.http), Http(server.http)
    group = "g" + uuid.uuid4().hex[:6]
    member.login("m" + uuid.uuid4().hex[:6], groups=group)
    outsider.login("o" + uuid.uuid4().hex[:6])
    name = facility()
    ws_member = connect(f"/ws/{name}?subscribe-group", cookie=member.cookie_header())
    ws_outsider = connect(f"/ws/{name}?subscribe-group&subscribe-broadcast", cookie=outsider.cookie_header())
    member.publish(name, "for the group", groups=[group])
    assert recv(ws_member) == "for the group"
    assert_silent(ws_outsider)


def test_session_message_reaches_only_that_session(connect, server):
    from conftest import Http

    first, second = Http(server.http), Http(server.http)
    session = first.login("s" + uuid.uuid4().hex[:6])["session"]
    second.login("t" + uuid.uuid4().hex[:6])
    name = facility()
    ws_first = connect(f"/ws/{name}?subscribe-session", cookie=first.cookie_header())
    ws_second = connect(f"/ws/{name}?subscribe-session", cookie=second.cookie_header())
    first.publish(name, "for my session", sessions=[session])
    assert recv(ws_first) == "for my session"
    assert_silent(ws_second)


def test_client_publishes_to_its_own_user_channel(connect, server):
    from conftest import Http

    user = Http(server.http)
    user.login("p" + uuid.uuid4().hex[:6])
    name = facility()
    reader = connect(f"/ws/{name}?subscribe-user", cookie=user.cookie_header())
    writer = connect(f"/ws/{name}?publish-user", cookie=user.cookie_header())
    writer.send("note to self")
    assert recv(reader) == "note to self"


def test_made_up_session_cookie_gets_no_session_channel(server, connect):
    cookie = "sessionid=abcdefghijklmnopqrstuvwxyz012345"
    assert_refused(server, connect, f"/ws/{facility()}?subscribe-session", 403, 1008, cookie=cookie)


# -- refusals and bad input -----------------------------------------------------

def test_anonymous_user_asking_only_for_user_channel_is_refused_403(server, connect):
    assert_refused(server, connect, f"/ws/{facility()}?subscribe-user", 403, 1008)


def test_forbidden_channel_is_refused_403(server, connect):
    body = assert_refused(server, connect, "/ws/forbidden?subscribe-broadcast", 403, 1008)
    assert "subscribe-broadcast" not in body  # what the client sent is logged, never echoed


def test_permission_denied_from_the_channels_hook_is_refused_403(server, connect):
    body = assert_refused(server, connect, "/ws/denied?subscribe-broadcast", 403, 1008)
    assert "Traceback" not in body and "not for you" not in body


def test_failing_hook_gives_500_or_1011_and_no_traceback(server, connect):
    body = assert_refused(server, connect, "/ws/explode?subscribe-broadcast", 500, 1011)
    assert "Traceback" not in body and "RuntimeError" not in body


@pytest.mark.parametrize("bad", ["", "a:b", "a%20b", "a%09b", "x" * 256, "a%00b", "%7Bx%7D"])
def test_bad_facility_name_is_refused_400(server, connect, bad):
    body = assert_refused(server, connect, f"/ws/{bad}?subscribe-broadcast", 400, 1008)
    # nginx answers an encoded NUL in the path with its own 400 page; the request never reaches us.
    by_nginx = server.mode.name == "nginx-uwsgi" and bad == "a%00b"
    assert "facility" in body or server.mode.refuses_after_upgrade or by_nginx


def test_longest_facility_name_is_accepted(connect, http):
    name = "y" * 255
    ws = connect(f"/ws/{name}?subscribe-broadcast")
    http.publish(name, "long", broadcast=True)
    assert recv(ws) == "long"


def test_a_host_outside_allowed_hosts_is_refused_400_even_with_its_own_origin(server):
    """DNS rebinding: a page of evil.example resolved to this server sends Host and Origin evil.example."""
    from helpers import exchange, status_of

    request = (b"GET /ws/chat?subscribe-broadcast HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\n"
               b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + KEY.encode() +
               b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    sock = raw_websocket_bytes(server, request) if server.mode.refuses_after_upgrade else None
    if sock is not None:
        assert read_close_code(sock) == 1008
        return
    response, answered = exchange(server.port, request)
    assert answered and status_of(response) == 400, response[:300]


def raw_websocket_bytes(server, request: bytes):
    import socket as socket_module

    sock = socket_module.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(1)
    assert data.startswith(b"HTTP/1.1 101"), data
    return sock


def test_foreign_origin_is_refused_403(server, connect):
    assert_refused(server, connect, f"/ws/{facility()}?subscribe-broadcast", 403, 1008, origin="http://evil.example")


def test_same_origin_is_accepted(server, connect):
    connect(f"/ws/{facility()}?subscribe-broadcast", origin=f"http://127.0.0.1:{server.port}")


@pytest.mark.parametrize("origin", [
    "http://127.0.0.1:9999",  # another port of the same host
    "https://127.0.0.1",  # another scheme
    "http://localhost",  # a host in ALLOWED_HOSTS is not the request's origin
    "null",
    "http://[::1",  # unparsable: 403, never a 500
])
def test_other_origins_of_the_same_host_are_refused_403(server, connect, origin):
    assert_refused(server, connect, f"/ws/{facility()}?subscribe-broadcast", 403, 1008, origin=origin)


def test_socket_without_any_channel_is_refused_403(server, connect):
    body = assert_refused(server, connect, f"/ws/{facility()}?echo", 403, 1008)
    assert "echo" not in body  # refusal bodies never echo what the client sent


def test_oversized_message_closes_with_1009(connect):
    ws = connect(f"/ws/{facility()}?publish-broadcast", max_size=None)
    ws.send("x" * (64 * 1024 + 1))
    assert_closed_with(ws, 1009)


def test_message_of_exactly_the_limit_is_published(connect):
    name = facility()
    sender = connect(f"/ws/{name}?publish-broadcast")
    receiver = connect(f"/ws/{name}?subscribe-broadcast", max_size=None)
    sender.send("z" * (64 * 1024))
    assert len(recv(receiver)) == 64 * 1024


def test_invalid_utf8_text_closes_with_1007(server):
    ws = raw_websocket(server, f"/ws/{facility()}?publish-broadcast")
    ws.sendall(masked_frame(0x1, b"\xff\xfe invalid"))
    assert read_close_code(ws) == 1007


def test_unmasked_frame_closes_with_1002(server):
    ws = raw_websocket(server, f"/ws/{facility()}?publish-broadcast")
    ws.sendall(bytes([0x81, 0x02]) + b"hi")
    assert read_close_code(ws) == 1002


def test_oversized_frame_header_closes_before_payload_arrives(server):
    ws = raw_websocket(server, f"/ws/{facility()}?publish-broadcast")
    # Announce a 1 GiB frame and send none of it: the close must come anyway.
    ws.sendall(bytes([0x82, 0xFF]) + (1 << 30).to_bytes(8, "big") + b"mask")
    assert read_close_code(ws) == 1009


def test_client_close_code_is_echoed(connect):
    ws = connect(f"/ws/{facility()}?subscribe-broadcast")
    ws.close(code=4000, reason="bye")
    assert ws.protocol.close_rcvd.code == 4000


def test_bad_handshake_key_is_refused_400(server):
    if server.mode.refuses_after_upgrade:
        pytest.skip("not ours to answer: gevent-websocket's handler does the handshake before the app runs "
                    "(it answers a malformed key with 500; docs/deployment.md)")
    response = raw_handshake(server, "/ws/foo?subscribe-broadcast", key="not-base64!")
    assert response.startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize("target", [
    b"/ws/chat?subscribe-broadcast&\xff\xfe",  # a byte that is no UTF-8 in the query
    b"/ws/chat\xff?subscribe-broadcast",  # and in the path
    b"/ws/chat?subscribe-broadcast&" + b"&".join(b"f%d" % i for i in range(150)),  # more parameters than any handshake needs
    b"/ws/chat?subscribe-broadcast&" + b"&".join(b"echo" for _ in range(150)),
], ids=["query-not-utf8", "path-not-utf8", "150-flags", "150-repeated-flags"])
def test_odd_targets_are_refused_400_never_500(server, target):
    from helpers import exchange, status_of

    request = (b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    logged_before = len(server.log_text())
    response, answered = exchange(server.port, request)
    assert answered, "no answer"
    if server.mode.refuses_after_upgrade and status_of(response) == 101:
        return  # gevent-websocket's worker upgrades first: the 1008 is test_fuzz's to see; never a 500 either way
    # 400 from us; a server or proxy in front may refuse a non-UTF-8 target itself (400) or a long one (414)
    assert status_of(response) in (400, 414), response[:200]
    assert "Traceback" not in server.log_text()[logged_before:]


# -- subprotocols --------------------------------------------------------------

def test_the_clients_first_subprotocol_offer_is_selected_as_ws4redis_did(connect):
    ws = connect(f"/ws/{facility()}?subscribe-broadcast&publish-broadcast&echo", subprotocols=["chat.v2", "chat.v1"])
    assert ws.subprotocol == "chat.v2"
    ws.send("works")
    assert recv(ws) == "works"


def test_a_client_that_offers_no_subprotocol_gets_none(connect):
    ws = connect(f"/ws/{facility()}?subscribe-broadcast")
    assert ws.subprotocol is None


@pytest.mark.parametrize("offer", ["a b", "chat,", "{x}", "ü"])
def test_a_malformed_subprotocol_offer_is_refused_400(server, offer):
    if server.mode.refuses_after_upgrade:
        sock = raw_websocket_bytes(server, _handshake_bytes(f"/ws/{facility()}?subscribe-broadcast",
                                                            f"Sec-WebSocket-Protocol: {offer}\r\n".encode()))
        assert read_close_code(sock) == 1008
        return
    from helpers import exchange, status_of

    response, _ = exchange(server.port, _handshake_bytes(f"/ws/{facility()}?subscribe-broadcast",
                                                         f"Sec-WebSocket-Protocol: {offer}\r\n".encode()))
    assert status_of(response) == 400, response[:300]
    assert b"\r\nSec-WebSocket-Protocol:" not in response.split(b"\r\n\r\n")[0]


def _handshake_bytes(path: str, extra: bytes = b"") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n").encode() + extra + b"\r\n"


def test_a_7_kb_cookie_gets_an_answer(server):
    """uWSGI's default buffer (4 KiB) gave no answer at all (nginx: 502); the modes run with the shipped buffer-size."""
    from helpers import exchange, status_of

    cookie = b"Cookie: big=" + b"x" * 7000 + b"\r\n"
    response, answered = exchange(server.port, _handshake_bytes(f"/ws/{facility()}?subscribe-broadcast", cookie))
    assert answered and status_of(response) == 101, response[:200]
    response, answered = exchange(server.port, b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n" + cookie + b"\r\n")
    assert answered and status_of(response) == 203, response[:200]


def test_unsupported_version_is_refused_426(server):
    if server.mode.refuses_after_upgrade:
        pytest.skip("not ours to answer: gevent-websocket's handler does the handshake before the app runs "
                    "(it accepts versions 7 and 8 too; docs/deployment.md)")
    response = raw_handshake(server, "/ws/foo?subscribe-broadcast", version="8")
    assert response.startswith(b"HTTP/1.1 426") and b"Sec-WebSocket-Version: 13" in response


def test_close_frame_reaches_a_client_still_sending_an_oversized_message(server):
    """Behind nginx too: the server keeps reading what arrives after its 1009, so no reset overtakes the close frame."""
    sock = raw_websocket(server, f"/ws/{facility()}?publish-broadcast")
    big = client_frame(0x1, b"z" * (2 * 1024 * 1024))
    sender = threading.Thread(target=_send_ignoring_errors, args=(sock, big), daemon=True)
    sender.start()
    try:
        assert read_close_code(sock, timeout=10) == 1009
    finally:
        sender.join(10)
        sock.close()


def _send_ignoring_errors(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass  # the server may end the connection once its close timeout is over
