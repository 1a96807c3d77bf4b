"""The Django app: groups in the session at login, and a check of the app order.

The websocket path reads groups from the session (``ws4redis:memberof``), so
that opening a socket never queries the group tables.  Django takes a
management command from the first app that has it, so this app must come
before ``django.contrib.staticfiles`` for its ``runserver`` (which serves
websockets) to be the one that runs: check ``ws4redis_mw.W001`` says so.
"""

from __future__ import annotations

from typing import Any, List, Optional

from django.apps import AppConfig, apps
from django.contrib.auth.signals import user_logged_in
from django.core import checks

from .redis_store import GROUPS_SESSION_KEY


def store_groups_in_session(sender: Any, user: Any, request: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[GROUPS_SESSION_KEY] = [group.name for group in user.groups.all()]


def runserver_order_problem(app_names: List[str]) -> Optional[str]:
    """Why ``runserver`` would not serve websockets with these apps, in this order, or ``None``."""
    if "django.contrib.staticfiles" not in app_names or "ws4redis_mw" not in app_names:
        return None
    if app_names.index("django.contrib.staticfiles") < app_names.index("ws4redis_mw"):
        return "ws4redis_mw comes after django.contrib.staticfiles in INSTALLED_APPS, so runserver serves no websockets"
    return None


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
        checks.register(check_app_order)
        checks.register(check_client_publishing, checks.Tags.security, deploy=True)
