"""The WSGI middleware: websockets under ``WEBSOCKET_URL``, everything else to Django.

How the pieces fit, for one websocket::

    WebSocketMiddleware            this module: dispatch on the path prefix
      handshake.parse              werkzeug reads path, query, headers; Refusal -> 4xx/5xx
      audience.django_request      session and user from the cookie; allowed flags
      subscriber                   flags -> channel names (ws4redis's key layout)
      hub.attach                   the process's shared Redis subscription
      transports.accept            the server's raw connection after the 101
      websocket.WebSocket.open     frames <-> bridge.Bridge <-> hub, until closed

A request whose path does not start with ``WEBSOCKET_URL`` is passed to the
wrapped application untouched: environ in, its iterable out, ``close()``
honoured by the server as usual.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Tuple, Type

from werkzeug.wrappers import Request

from . import audience, clientaddr, control, events, frames, handshake, history, metrics, revalidation, transports
from .bridge import Bridge
from .handshake import Refusal
from .hub import RedisUnavailable, get_hub
from .limits import SocketCounts
from .origins import OriginPolicy
from .settings import Settings, SettingsError, import_string_or_callable, process_settings
from .subscriber import RedisSubscriber, subscriber_class
from .websocket import WebSocket

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["WebSocketMiddleware"]

logger = logging.getLogger("ws4redis_mw")

_ids = itertools.count(1)


class WebSocketMiddleware:
    """Wrap a WSGI application (Django's) and serve websockets under ``WEBSOCKET_URL``.

    ``settings`` defaults to Django's, read once (:func:`process_settings`):
    at construction when Django is configured (as in a ``wsgi.py``), else on
    the first request.  Every part of the websocket path uses this one object.
    A ``WS4REDIS_SUBSCRIBER`` that cannot work raises
    :class:`~ws4redis_mw.settings.SettingsError` then, not on a socket.
    """

    def __init__(self, app: "WSGIApplication", settings: Optional[Settings] = None):
        self.app = app
        self._settings = settings
        self._subscriber: Optional[Type[RedisSubscriber]] = None
        if settings is not None or _django_configured():
            self._prepare()
        transports.prepare_server()  # at startup, not on the first websocket

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._prepare()
        assert self._settings is not None
        return self._settings

    def _prepare(self) -> None:
        settings = self._settings or process_settings()
        self._subscriber = subscriber_class(settings.subscriber)
        try:
            self._origins = OriginPolicy(_origin_rules(settings.allowed_origins), settings.csrf_trusted_origins)
        except ValueError as exc:
            raise SettingsError(f"WS4REDIS_ALLOWED_ORIGINS or CSRF_TRUSTED_ORIGINS: {exc}") from None
        self._counts = SocketCounts(settings.max_sockets_per_ip, settings.max_sockets_per_user)
        self._settings = settings

    def __call__(self, environ: "WSGIEnvironment", start_response: "StartResponse") -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(self.settings.websocket_url):
            if path == self.settings.metrics_url:
                return metrics.serve(environ, start_response, self.settings)
            return self.app(environ, start_response)
        return self._serve_websocket(environ, start_response)

    def app_protocol(self, path: str) -> Optional[str]:
        """gevent-websocket's hook: the subprotocol its handler names in the 101 it sends before the application runs.

        It passes the path only; the offers are in the environ of its
        handler, the caller (gevent-websocket 0.10, unchanged since 2017).
        A malformed or unsupported offer selects none here: the handshake
        is then refused with 1008 once the application runs.
        """
        handler = sys._getframe(1).f_locals.get("self")
        environ = getattr(handler, "environ", None) or {}
        try:
            return handshake.select_subprotocol(environ.get("HTTP_SEC_WEBSOCKET_PROTOCOL"), self.settings.subprotocols)
        except Refusal:
            return None

    def _serve_websocket(self, environ: "WSGIEnvironment", start_response: "StartResponse") -> Iterable[bytes]:
        settings = self.settings
        request = Request(environ)
        upgraded = transports.already_upgraded(environ)
        environ[events.ID_KEY] = socket_id = next(_ids)
        name = f"ws#{socket_id} {request.path!r}"  # repr: a path may hold control characters
        client = clientaddr.from_environ(environ, settings.trusted_proxies)  # the visitor's, through trusted proxies
        try:
            shake = handshake.parse(request, settings.websocket_url, upgraded=upgraded, subprotocols=settings.subprotocols)
            transports.check_supported(environ)
            handshake.check_origin(request, self._origins, settings.secure_proxy_ssl_header, secure=client.secure)
            socket, kept, views = self._open(environ, shake, settings, name)
        except transports.NotSupported as exc:
            return self._refuse(Refusal(HTTPStatus.NOT_IMPLEMENTED, str(exc)), environ, start_response, upgraded, name)
        except Refusal as refusal:
            return self._refuse(refusal, environ, start_response, upgraded, name)
        except Exception:  # a hook or the session store failed: no traceback to the client
            logger.exception("%s: handshake failed", name)
            return self._refuse(Refusal(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error"), environ, start_response, upgraded, name)
        try:
            transport = transports.accept(environ, start_response, handshake.accept_headers(shake.key, shake.subprotocol))
        except BaseException:
            socket.hub.detach(socket)
            raise
        logger.debug("%s: open (subscribe %s, publish %s)", name, socket.bridge.subscriptions, socket.bridge.publishers)
        socket.open(transport, kept, views)
        return []  # the connection outlives the request under every server we accept

    def _open(
        self, environ: "WSGIEnvironment", shake: handshake.Handshake, settings: Settings, name: str
    ) -> Tuple[WebSocket, List[Optional[bytes]], Optional[Dict[str, history.View]]]:
        """Work out the socket's channels and attach it to the hub, before the 101."""
        from django.core.exceptions import DisallowedHost, PermissionDenied, SuspiciousOperation

        try:
            request = audience.django_request(environ, settings)
            return self._attach(request, shake, settings, name)
        except PermissionDenied as exc:  # from a hook: ws4redis refused the socket with 403
            raise Refusal(HTTPStatus.FORBIDDEN, "permission denied", logged=f"PermissionDenied({str(exc)!r})") from None
        except DisallowedHost as exc:
            raise Refusal(HTTPStatus.BAD_REQUEST, "Host not allowed", logged=str(exc)) from None
        except SuspiciousOperation as exc:  # Django's verdict on the request (too many fields, a bad session...)
            raise Refusal(HTTPStatus.BAD_REQUEST, "bad request", logged=f"{type(exc).__name__}({str(exc)!r})") from None
        finally:
            # Loading the session and user may have opened a database
            # connection; under gevent's monkey-patching it belongs to this
            # greenlet and would stay open for the socket's whole life.
            from django.db import connections

            connections.close_all()

    def _attach(self, request: Any, shake: handshake.Handshake, settings: Settings, name: str
                ) -> Tuple[WebSocket, List[Optional[bytes]], Optional[Dict[str, history.View]]]:
        subscriber_cls = self._subscriber
        assert subscriber_cls is not None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            request.environ[events.USER_KEY] = user.get_username()  # for the log lines
        known = subscriber_cls.allowed_flags()
        asked = [flag for flag in shake.flags if flag in known]
        allowed = set(audience.allowed_flags(request, asked, settings))
        subscriber = subscriber_cls(settings=settings)
        subscriber.set_pubsub_channels(request, [f for f in asked if f in allowed])
        subscriptions, publishers = subscriber.subscriptions, subscriber.publishers
        if not subscriptions and not publishers:
            raise Refusal(HTTPStatus.FORBIDDEN, "no channel to subscribe or publish to: ask for an allowed subscribe-* or publish-* flag",
                          logged=f"flags {asked!r}")
        refused = [flag for flag in asked if flag not in allowed]
        if refused:
            logger.info("%s: flags not allowed, ignored: %s", name, ", ".join(refused))
        user = audience.username(request)
        address = clientaddr.from_environ(request.environ, settings.trusted_proxies).address
        too_many = self._counts.acquire(address, user)
        if too_many is not None:
            raise Refusal(HTTPStatus.TOO_MANY_REQUESTS, too_many, logged=f"address {address!r} user {user!r}")
        hub = get_hub(settings)
        history_channels = [channel for channel in subscriptions if hub.has_history(channel)]
        names = {channel: history.client_name(channel, settings.prefix) for channel in subscriptions}
        positions = None
        if shake.recover is not None:
            positions = history.parse_positions(shake.recover)
            if positions is None:
                logger.info("%s: malformed recover positions, nothing recovered", name)
                positions = {names[channel]: history.INVALID for channel in history_channels}
        expires = getattr(request, audience.EXPIRES_ATTRIBUTE, None)  # a token's
        bridge = Bridge(settings, subscriptions=subscriptions, publishers=publishers, echo=shake.echo,
                        expire=settings.expire if user is not None else settings.anonymous_expire,
                        keep_history=user is not None or settings.anonymous_history,
                        recover=positions, names=names, history_channels=history_channels,
                        lifetime=None if expires is None else max(0.0, expires - time.time()))
        socket = WebSocket(bridge, hub, name=name, info=events.info_from(request.environ))
        socket.renew = getattr(request, audience.RENEW_ATTRIBUTE, None)
        socket.on_closed = lambda: self._counts.release(address, user)
        views = None
        try:
            identity = control.Identity(user, audience.session_key(request), shake.facility)
            kept = hub.attach(socket, subscriptions, identity=identity)
            if identity.session is not None:
                revalidation.watch(hub)  # the socket ends with its session
            if positions is not None and history_channels:
                try:
                    views = hub.history_views({channel: positions.get(names[channel]) for channel in history_channels})
                except BaseException:
                    hub.detach(socket)
                    raise
        except RedisUnavailable as exc:
            self._counts.release(address, user)
            raise Refusal(HTTPStatus.SERVICE_UNAVAILABLE, "Redis is unavailable, try again later", logged=str(exc)) from None
        except BaseException:
            self._counts.release(address, user)
            raise
        return socket, kept, views

    def _refuse(
        self, refusal: Refusal, environ: "WSGIEnvironment", start_response: "StartResponse", upgraded: bool, name: str
    ) -> Iterable[bytes]:
        events.refused(environ, refusal.status, refusal.reason, refusal.logged)
        if not upgraded:
            return refusal.response(hop_by_hop=transports.server_kind(environ) is not None)(environ, start_response)
        # The server already sent the 101: say it with a close frame instead.
        transport = transports.accept(environ, start_response, [])
        try:
            transport.send_nowait(frames.encode_close(refusal.close_code, refusal.reason))
        except OSError:
            pass
        transport.close()
        return []


def _origin_rules(value: Any) -> Any:
    """``WS4REDIS_ALLOWED_ORIGINS`` as OriginPolicy takes it: a dotted path names a callable."""
    if isinstance(value, str):
        return [value] if value == "*" or "://" in value else import_string_or_callable(value)
    return value


def _django_configured() -> bool:
    from django.conf import settings

    return bool(settings.configured)
