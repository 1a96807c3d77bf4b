"""The opening handshake: what a websocket request asks for, and refusals.

:func:`parse` reads a request under ``WEBSOCKET_URL`` (with werkzeug) and
either returns a :class:`Handshake` or raises :class:`Refusal`, which carries
the HTTP status to answer with before the upgrade, and the close code to use
where the server had already upgraded the connection (gevent-websocket).

Statuses: 426 for a plain HTTP request to the websocket prefix or an
unsupported ``Sec-WebSocket-Version``; 405 for a method other than GET; 400
for a malformed handshake or facility name; 403 for a forbidden origin or
channel, or no channel at all; 429 for too many sockets from one address or
user; 503 while Redis is unavailable; 501 for a server that cannot hand the
connection over.  Refusal bodies are plain text of ours, never an echo of
what the client sent, with ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import logging
import re
from http import HTTPStatus
from typing import Any, List, Optional, Tuple

from werkzeug.http import is_hop_by_hop_header
from werkzeug.wrappers import Request, Response

from .channels import InvalidFacility, validate_facility
from .frames import CloseCode
from .origins import OriginPolicy, parse_host

__all__ = ["Handshake", "Refusal", "is_websocket_request", "parse", "accept_headers"]

logger = logging.getLogger("ws4redis_mw.handshake")

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: The close code that stands for each refusal once the connection is upgraded.
_CLOSE_CODES = {
    HTTPStatus.BAD_REQUEST: CloseCode.POLICY_VIOLATION,
    HTTPStatus.FORBIDDEN: CloseCode.POLICY_VIOLATION,
    HTTPStatus.NOT_FOUND: CloseCode.POLICY_VIOLATION,
    HTTPStatus.UPGRADE_REQUIRED: CloseCode.PROTOCOL_ERROR,
    HTTPStatus.SERVICE_UNAVAILABLE: CloseCode.TRY_AGAIN_LATER,
    HTTPStatus.TOO_MANY_REQUESTS: CloseCode.TRY_AGAIN_LATER,
}


class Refusal(Exception):
    """The handshake is refused: answer ``status`` with ``reason`` as the body.

    ``reason`` is ours and never holds what the client sent; ``logged`` adds
    such details (already escaped) to the log line only.
    """

    def __init__(self, status: HTTPStatus, reason: str, headers: Optional[List[Tuple[str, str]]] = None, logged: str = ""):
        super().__init__(f"{int(status)} {reason}")
        self.status = status
        self.reason = reason
        self.headers = headers or []
        self.logged = logged

    @property
    def close_code(self) -> CloseCode:
        return _CLOSE_CODES.get(self.status, CloseCode.INTERNAL_ERROR)

    def response(self, hop_by_hop: bool = True) -> Response:
        """The refusal as a werkzeug response; ``hop_by_hop=False`` leaves out ``Upgrade`` and ``Connection``.

        A server that is not ours to upgrade (wsgiref: Django's test server,
        ``runserver`` without this app first) refuses an application's
        hop-by-hop headers with an error, which would turn a 426 into a 500.
        """
        headers = [(name, value) for name, value in self.headers if hop_by_hop or not is_hop_by_hop_header(name)]
        if self.status in (HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.TOO_MANY_REQUESTS):
            headers.append(("Retry-After", "5"))
        headers.append(("X-Content-Type-Options", "nosniff"))
        return Response(self.reason + "\n", status=int(self.status), headers=headers, mimetype="text/plain")


@dataclasses.dataclass(frozen=True)
class Handshake:
    facility: str
    flags: List[str]  # every query key, in order, unknown ones included
    key: str
    echo: bool
    #: The ``recover`` flag's value (``""`` for a bare flag), or ``None`` without it.
    recover: Optional[str] = None
    subprotocol: Optional[str] = None  # the one selected, named in the 101


def is_websocket_request(request: Request) -> bool:
    connection = {token.strip().lower() for token in request.headers.get("Connection", "").split(",")}
    return request.headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in connection


#: Most query parameters a handshake may carry.  ws4redis' flags are about a
#: dozen; without a bound, thousands would cost every later step (and Django
#: refuses more than ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` with an exception).
MAX_QUERY_PARAMETERS = 100


def parse(request: Request, websocket_url: str, *, upgraded: bool = False,
          subprotocols: Optional[Tuple[str, ...]] = None) -> Handshake:
    """Check the handshake of ``request``; ``upgraded``: the server already did the HTTP part.

    ``subprotocols`` is ``WS4REDIS_SUBPROTOCOLS`` (:func:`select_subprotocol`).
    """
    if not upgraded:
        _check_http(request)
    _check_target(request.environ)
    facility = request.path[len(websocket_url):] if request.path.startswith(websocket_url) else ""
    try:
        validate_facility(facility)
    except InvalidFacility as exc:
        raise Refusal(HTTPStatus.BAD_REQUEST, f"invalid facility name: {exc}") from None
    flags = list(request.args.keys())
    subprotocol = select_subprotocol(request.environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL"), subprotocols)
    return Handshake(facility=facility, flags=flags, key=request.headers.get("Sec-WebSocket-Key", ""), echo="echo" in flags,
                     recover=request.args.get("recover"), subprotocol=subprotocol)


# RFC 7230 3.2.6's token characters: a subprotocol name is a token (RFC 6455 4.1).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def validate_subprotocols(value: Any) -> Optional[Tuple[str, ...]]:
    """``WS4REDIS_SUBPROTOCOLS`` as a tuple of names; ``ValueError`` for a name that is no token."""
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else tuple(value)
    for name in names:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ValueError(f"{name!r} is not a subprotocol name (an HTTP token: letters, digits, !#$%&'*+-.^_`|~)")
    return names


def select_subprotocol(header: Optional[str], supported: Optional[Tuple[str, ...]]) -> Optional[str]:
    """The subprotocol the 101 names, from the client's ``Sec-WebSocket-Protocol`` offers.

    ``supported`` ``None``: the client's first offer (ws4redis' behaviour).
    Otherwise the first offer that is supported; offers with none supported
    are refused with 400 (an answer without a subprotocol would be valid,
    but uWSGI's handshake cannot leave the header out, so every server
    refuses alike).
    """
    if header is None or not header.strip():
        return None
    offers = [offer.strip() for offer in header.split(",")]
    if not all(_TOKEN.fullmatch(offer) for offer in offers):
        raise Refusal(HTTPStatus.BAD_REQUEST, "malformed Sec-WebSocket-Protocol: a comma-separated list of names",
                      logged=f"Sec-WebSocket-Protocol {header[:200]!r}")
    if supported is None:
        return offers[0]
    for offer in offers:
        if offer in supported:
            return offer
    raise Refusal(HTTPStatus.BAD_REQUEST, f"none of the offered subprotocols is spoken here: {', '.join(supported)}",
                  logged=f"Sec-WebSocket-Protocol {header[:200]!r}")


def _check_target(environ: Any) -> None:
    """The path and query are UTF-8 (WSGI hands them over as latin-1 text) and the query has a sane size."""
    for name in ("PATH_INFO", "QUERY_STRING"):
        value = environ.get(name, "")
        try:
            value.encode("latin-1").decode("utf-8")
        except UnicodeEncodeError:
            continue  # a server that already decoded it (not by the book): nothing to check
        except UnicodeDecodeError:
            what = "path" if name == "PATH_INFO" else "query string"
            raise Refusal(HTTPStatus.BAD_REQUEST, f"the {what} is not UTF-8") from None
    if environ.get("QUERY_STRING", "").count("&") >= MAX_QUERY_PARAMETERS:
        raise Refusal(HTTPStatus.BAD_REQUEST, f"more than {MAX_QUERY_PARAMETERS} query parameters")


def _check_http(request: Request) -> None:
    if not is_websocket_request(request):
        raise Refusal(HTTPStatus.UPGRADE_REQUIRED, "this URL serves websockets only: send a websocket upgrade request",
                      [("Upgrade", "websocket"), ("Connection", "Upgrade")])
    if request.method != "GET":
        raise Refusal(HTTPStatus.METHOD_NOT_ALLOWED, "a websocket handshake must use GET", [("Allow", "GET")])
    if request.environ.get("SERVER_PROTOCOL") == "HTTP/1.0":
        raise Refusal(HTTPStatus.BAD_REQUEST, "a websocket handshake needs HTTP/1.1")
    if request.headers.get("Sec-WebSocket-Version", "").strip() != "13":
        raise Refusal(
            HTTPStatus.UPGRADE_REQUIRED, "unsupported Sec-WebSocket-Version: only 13 is spoken", [("Sec-WebSocket-Version", "13")]
        )
    key = request.headers.get("Sec-WebSocket-Key", "")
    try:
        if len(base64.b64decode(key.encode("ascii"), validate=True)) != 16:
            raise ValueError
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise Refusal(HTTPStatus.BAD_REQUEST, "missing or malformed Sec-WebSocket-Key") from None


def check_origin(request: Request, policy: OriginPolicy, proxy_ssl_header: Optional[Tuple[str, str]] = None,
                 *, secure: bool = False) -> None:
    """Refuse (403) a page of another origin; see :mod:`ws4redis_mw.origins`.

    The request is secure if ``secure`` (a trusted proxy's ``X-Forwarded-Proto``,
    :mod:`ws4redis_mw.clientaddr`), its scheme is https, or Django's
    ``SECURE_PROXY_SSL_HEADER`` (an environ key and its value) says so.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return
    secure = secure or request.scheme in ("https", "wss") or (
        proxy_ssl_header is not None and request.environ.get(proxy_ssl_header[0]) == proxy_ssl_header[1])
    if not policy.allows(origin, parse_host(request.host, secure)):
        raise Refusal(HTTPStatus.FORBIDDEN, "this page's origin may not open websockets here", logged=f"origin {origin!r}")


def accept_headers(key: str, subprotocol: Optional[str] = None) -> List[Tuple[str, str]]:
    """The headers of the 101 answer to ``Sec-WebSocket-Key: key``, naming ``subprotocol`` if one was selected."""
    accept = base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)]
    if subprotocol is not None:
        headers.append((SUBPROTOCOL_HEADER, subprotocol))
    return headers


SUBPROTOCOL_HEADER = "Sec-WebSocket-Protocol"
