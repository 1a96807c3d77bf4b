"""The Django app: keeps each user's group names in their session at login.

The websocket path reads groups from the session (``ws4redis:memberof``), so
that opening a socket never queries the group tables.
"""

from __future__ import annotations

from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in

from .redis_store import GROUPS_SESSION_KEY


def store_groups_in_session(sender, user, request, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[GROUPS_SESSION_KEY] = [group.name for group in user.groups.all()]


class Ws4RedisConfig(AppConfig):
    name = "ws4redis_mw"
    verbose_name = "Websockets for Redis"

    def ready(self) -> None:
        user_logged_in.connect(store_groups_in_session, dispatch_uid="ws4redis_mw.store_groups_in_session")
