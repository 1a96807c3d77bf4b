"""The opening handshake, parsed from environs built with werkzeug's EnvironBuilder (no server)."""

from http import HTTPStatus

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from ws4redis_mw.frames import CloseCode
from ws4redis_mw.handshake import Refusal, accept_headers, check_origin, parse

from helpers import KEY

HEADERS = {"Upgrade": "websocket", "Connection": "keep-alive, Upgrade", "Sec-WebSocket-Key": KEY, "Sec-WebSocket-Version": "13"}


def request(path="/ws/chat?subscribe-broadcast&echo", method="GET", **headers):
    all_headers = {**HEADERS, **headers}
    return Request(EnvironBuilder(path=path, method=method, headers={k: v for k, v in all_headers.items() if v is not None}).get_environ())


def refusal(req) -> Refusal:
    with pytest.raises(Refusal) as info:
        parse(req, "/ws/")
    return info.value


def test_valid_handshake_gives_facility_flags_and_echo():
    shake = parse(request(), "/ws/")
    assert (shake.facility, shake.flags, shake.echo, shake.key) == ("chat", ["subscribe-broadcast", "echo"], True, KEY)


def test_plain_request_is_refused_426_with_upgrade_header():
    refused = refusal(request(Upgrade=None))
    assert refused.status == HTTPStatus.UPGRADE_REQUIRED and ("Upgrade", "websocket") in refused.headers


def test_post_is_refused_405():
    assert refusal(request(method="POST")).status == HTTPStatus.METHOD_NOT_ALLOWED


@pytest.mark.parametrize("key", [None, "short", "!!!!"])
def test_bad_key_is_refused_400(key):
    assert refusal(request(**{"Sec-WebSocket-Key": key})).status == HTTPStatus.BAD_REQUEST


def test_other_version_is_refused_426_naming_13():
    refused = refusal(request(**{"Sec-WebSocket-Version": "8"}))
    assert refused.status == HTTPStatus.UPGRADE_REQUIRED and ("Sec-WebSocket-Version", "13") in refused.headers


@pytest.mark.parametrize("path", ["/ws/", "/ws/a:b", "/ws/a%20b", "/ws/" + "f" * 256, "/ws/%7Bx%7D", "/ws/a{x}b"])
def test_bad_facility_is_refused_400(path):
    assert refusal(request(path=path)).status == HTTPStatus.BAD_REQUEST


def test_already_upgraded_request_skips_the_http_checks():
    assert parse(request(Upgrade=None), "/ws/", upgraded=True).facility == "chat"


@pytest.mark.parametrize("status, code", [
    (HTTPStatus.BAD_REQUEST, CloseCode.POLICY_VIOLATION), (HTTPStatus.FORBIDDEN, CloseCode.POLICY_VIOLATION),
    (HTTPStatus.SERVICE_UNAVAILABLE, CloseCode.TRY_AGAIN_LATER), (HTTPStatus.INTERNAL_SERVER_ERROR, CloseCode.INTERNAL_ERROR),
])
def test_refusal_after_an_early_upgrade_maps_to_a_close_code(status, code):
    assert Refusal(status, "x").close_code == code


def test_503_says_when_to_retry():
    assert Refusal(HTTPStatus.SERVICE_UNAVAILABLE, "down").response().headers["Retry-After"] == "5"


def test_accept_header_is_rfc_6455s_example():
    assert ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") in accept_headers(KEY)


@pytest.mark.parametrize(("peer", "passes"), [("", True), ("127.0.0.1", True), ("203.0.113.9", False)])
def test_forwarded_https_counts_for_the_own_origin_only_from_a_trusted_proxy(peer, passes):
    from werkzeug.test import EnvironBuilder

    from ws4redis_mw.clientaddr import TrustedProxies, from_environ
    from ws4redis_mw.origins import OriginPolicy

    environ = EnvironBuilder(path="/ws/x", headers={"Host": "example.com", "Origin": "https://example.com",
                                                     "X-Forwarded-Proto": "https"}).get_environ()
    environ["REMOTE_ADDR"] = peer
    request = Request(environ)
    secure = from_environ(environ, TrustedProxies()).secure
    if passes:
        check_origin(request, OriginPolicy(), None, secure=secure)
    else:
        with pytest.raises(Refusal) as refused:
            check_origin(request, OriginPolicy(), None, secure=secure)
        assert refused.value.status == 403
