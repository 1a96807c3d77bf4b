"""The Django app: groups in the session at login, sockets closed at logout, settings read again when a test overrides them, and checks.

Django's ``logout()`` sends ``user_logged_out`` before it flushes the
session: the handler sends a disconnect order for that session
(:func:`ws4redis_mw.disconnect`), so its sockets close in every worker with
4001.  If Redis cannot be reached the logout still succeeds (a log line
says so) and the sockets are closed at their next check
(:mod:`ws4redis_mw.revalidation`).

The websocket path reads groups from the session (``ws4redis:memberof``), so
that opening a socket does not query the group tables while they are younger
than ``WS4REDIS_GROUPS_LIFETIME``; a change of ``user.groups`` makes this
process read them again (:mod:`ws4redis_mw.groups`).  Django takes a
management command from the first app that has it, so this app must come
before ``django.contrib.staticfiles`` for its ``runserver`` (which serves
websockets) to be the one that runs: check ``ws4redis_mw.W001`` says so.

Check ``ws4redis_mw.W002`` warns when ``DEBUG = False`` and the client script
``ws4redis_mw/ws4redis.js`` is not in ``STATIC_ROOT``: with ``DEBUG`` off
neither ``runserver`` nor WhiteNoise serve it from the package, so pages get
a 404 and "WS4Redis is not defined".  It looks at the files only: whether a
web server in front serves ``STATIC_ROOT`` at ``STATIC_URL`` it cannot know,
and a ``STATIC_URL`` on another host or a storage that is not on the local
disk (S3 and the like) is not checked.
"""

from __future__ import annotations

import logging
import os
from typing import Any, List, Optional

from django.apps import AppConfig, apps
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.core import checks
from django.db.models.signals import m2m_changed
from django.test.signals import setting_changed

from .errors import RedisUnavailable
from .groups import groups_changed, store_groups
from .settings import process_settings

logger = logging.getLogger("ws4redis_mw")

#: Django settings read into ws4redis_mw's Settings besides its own WS4REDIS_* and WEBSOCKET_*.
_ALSO_READ = ("CSRF_TRUSTED_ORIGINS", "SECURE_PROXY_SSL_HEADER")


def store_groups_in_session(sender: Any, user: Any, request: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session") and hasattr(user, "groups"):
        store_groups(request.session, user)


def close_sockets_at_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from .control import disconnect

    key = getattr(getattr(request, "session", None), "session_key", None)
    if key is None:
        return  # nothing was ever saved: no socket can belong to it
    try:
        disconnect(session=key, reason="logged out")
    except RedisUnavailable as exc:
        logger.warning("logout: the session's sockets are closed at their next check, not now: %s", exc)


def settings_changed(sender: Any, setting: str, **kwargs: Any) -> None:
    """``override_settings`` in a test: the process's settings (``RedisPublisher``'s) are read again."""
    if setting.startswith(("WS4REDIS_", "WEBSOCKET_")) or setting in _ALSO_READ:
        process_settings.cache_clear()


def runserver_order_problem(app_names: List[str]) -> Optional[str]:
    """Why ``runserver`` would not serve websockets with these apps, in this order, or ``None``."""
    if "django.contrib.staticfiles" not in app_names or "ws4redis_mw" not in app_names:
        return None
    if app_names.index("django.contrib.staticfiles") < app_names.index("ws4redis_mw"):
        return "ws4redis_mw comes after django.contrib.staticfiles in INSTALLED_APPS, so runserver serves no websockets"
    return None


#: The client script, as templates name it with ``{% static %}``.
CLIENT_SCRIPT = "ws4redis_mw/ws4redis.js"


def client_script_problem(debug: bool, static_url: Optional[str], static_root: Optional[str],
                          local_storage: bool, whitenoise_finders: bool) -> Optional[str]:
    """Why pages could not load the client script from ``STATIC_URL``, or ``None`` (also when it cannot be told)."""
    if debug or not static_url or whitenoise_finders or not local_storage:
        return None
    if static_url.startswith(("http://", "https://", "//")):
        return None
    if not static_root:
        return (f"DEBUG is False and STATIC_ROOT is not set: nothing serves {CLIENT_SCRIPT} at STATIC_URL ({static_url}), "
                "so pages that load it get a 404 ('WS4Redis is not defined')")
    if not os.path.isfile(os.path.join(static_root, *CLIENT_SCRIPT.split("/"))):
        return (f"DEBUG is False and {CLIENT_SCRIPT} is not in STATIC_ROOT ({static_root}), "
                f"so pages that load it from STATIC_URL ({static_url}) get a 404 ('WS4Redis is not defined')")
    return None


def check_client_script(app_configs: Any = None, **kwargs: Any) -> List[checks.CheckMessage]:
    from django.conf import settings

    if settings.DEBUG or not settings.STATIC_URL:
        return []  # before touching the storage, which a site without static files may not configure
    whitenoise = "whitenoise.middleware.WhiteNoiseMiddleware" in getattr(settings, "MIDDLEWARE", [])
    problem = client_script_problem(
        debug=settings.DEBUG,
        static_url=settings.STATIC_URL,
        static_root=str(settings.STATIC_ROOT) if settings.STATIC_ROOT else None,
        local_storage=_local_static_storage(),
        whitenoise_finders=whitenoise and bool(getattr(settings, "WHITENOISE_USE_FINDERS", False)),
    )
    if problem is None:
        return []
    hint = "Run './manage.py collectstatic', and serve STATIC_ROOT at STATIC_URL (WhiteNoise's middleware, or your web server)."
    return [checks.Warning(problem, hint=hint, id="ws4redis_mw.W002")]


def _local_static_storage() -> bool:
    """Whether static files are stored on the local disk (in ``STATIC_ROOT``)."""
    from django.core.files.storage import FileSystemStorage

    try:
        from django.contrib.staticfiles.storage import staticfiles_storage

        return isinstance(staticfiles_storage, FileSystemStorage)
    except Exception:  # no staticfiles storage configured (InvalidStorageError, ImproperlyConfigured)
        return True  # then {% static %} is STATIC_URL + path, served from STATIC_ROOT if anything


def check_app_order(app_configs: Any = None, **kwargs: Any) -> List[checks.CheckMessage]:
    problem = runserver_order_problem([config.name for config in apps.get_app_configs()])
    if problem is None:
        return []
    return [checks.Warning(problem, hint="Put 'ws4redis_mw' before 'django.contrib.staticfiles'.", id="ws4redis_mw.W001")]


def check_client_publishing(app_configs: Any = None, **kwargs: Any) -> List[checks.CheckMessage]:
    """Under ``check --deploy``: warn when any client, anonymous included, may publish."""
    from django.conf import settings

    if settings.DEBUG or getattr(settings, "WS4REDIS_ALLOWED_CHANNELS", None) is not None:
        return []
    return [checks.Warning(
        "Any websocket client, anonymous ones included, may publish to a channel with a publish-* flag.",
        hint="Set WS4REDIS_ALLOWED_CHANNELS to a function that keeps publish-* flags only for the users "
             "and facilities that may publish (README, Security).",
        id="ws4redis_mw.W003",
    )]


class Ws4RedisConfig(AppConfig):  # type: ignore[misc]  # Django has no type information here
    name = "ws4redis_mw"
    verbose_name = "Websockets for Redis"

    def ready(self) -> None:
        user_logged_in.connect(store_groups_in_session, dispatch_uid="ws4redis_mw.store_groups_in_session")
        user_logged_out.connect(close_sockets_at_logout, dispatch_uid="ws4redis_mw.close_sockets_at_logout")
        setting_changed.connect(settings_changed, dispatch_uid="ws4redis_mw.settings_changed")
        checks.register(check_app_order)
        checks.register(check_client_publishing, checks.Tags.security, deploy=True)
        checks.register(check_client_script)
        self._watch_group_changes()

    @staticmethod
    def _watch_group_changes() -> None:
        if not apps.is_installed("django.contrib.auth"):
            return  # no users: no groups
        from django.contrib.auth import get_user_model

        groups = getattr(get_user_model(), "groups", None)
        if groups is not None:  # a custom user model may have none
            m2m_changed.connect(groups_changed, sender=groups.through, dispatch_uid="ws4redis_mw.groups_changed")
