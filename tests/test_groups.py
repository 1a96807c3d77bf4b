"""Group names: no query while young, one query when old, changes seen on new sockets.

The first tests count the queries :func:`ws4redis_mw.groups.user_groups` runs
against the test project's real (SQLite) database; the last one removes a
user from a group through a view of a real server, in every mode, and opens
a new socket.
"""

from __future__ import annotations

import time
import urllib.parse
import uuid


def user_with_groups(*names: str):
    """A new user in groups ``names``, made as another process would (no m2m_changed here)."""
    from django.contrib.auth.models import Group, User

    user = User.objects.create(username="u" + uuid.uuid4().hex[:10])
    through = User.groups.through
    through.objects.bulk_create([through(user=user, group=Group.objects.get_or_create(name=name)[0]) for name in names])
    return user


def session_read_at(names, at: float) -> dict:
    from ws4redis_mw.groups import GROUPS_READ_AT_SESSION_KEY, GROUPS_SESSION_KEY

    return {GROUPS_SESSION_KEY: list(names), GROUPS_READ_AT_SESSION_KEY: at}


def queries(call):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        result = call()
    return result, len(captured)


def test_names_kept_in_the_session_within_the_lifetime_cost_no_query(django_setup):
    from ws4redis_mw.groups import user_groups

    user = user_with_groups("gA", "gB")
    session = session_read_at(["gA", "gB"], time.time() - 30)
    assert queries(lambda: user_groups(session, user, max_age=60)) == (["gA", "gB"], 0)


def test_names_older_than_the_lifetime_are_read_again_with_one_query_then_kept(django_setup):
    from ws4redis_mw.groups import user_groups

    user = user_with_groups("gA", "gB")
    session = session_read_at(["gA", "gB"], time.time() - 30)
    # Removed as another process would: a bulk delete sends no m2m_changed here.
    user.groups.through.objects.filter(user=user, group__name="gB").delete()
    assert queries(lambda: user_groups(session, user, max_age=60)) == (["gA", "gB"], 0)  # not older yet: stale
    session = session_read_at(["gA", "gB"], time.time() - 61)  # now older
    assert queries(lambda: user_groups(session, user, max_age=60)) == (["gA"], 1)
    assert queries(lambda: user_groups(session, user, max_age=60)) == (["gA"], 0)


def test_a_change_of_user_groups_in_this_process_is_seen_at_once(django_setup):
    from django.contrib.auth.models import Group

    from ws4redis_mw.groups import user_groups

    user = user_with_groups("gA", "gB")
    session = session_read_at(["gA", "gB"], time.time())
    user.groups.remove(Group.objects.get(name="gB"))
    assert queries(lambda: user_groups(session, user, max_age=60)) == (["gA"], 1)
    Group.objects.get(name="gA").user_set.remove(user)  # the reverse side of the relation
    assert queries(lambda: user_groups(session, user, max_age=60)) == ([], 1)


def test_clearing_a_groups_members_makes_every_users_names_stale_in_this_process(django_setup):
    from django.contrib.auth.models import Group

    from ws4redis_mw.groups import user_groups

    user = user_with_groups("gC")
    session = session_read_at(["gC"], time.time())
    assert queries(lambda: user_groups(session, user, max_age=60)) == (["gC"], 0)
    Group.objects.get(name="gC").user_set.clear()  # m2m_changed says which group, not which users
    assert queries(lambda: user_groups(session, user, max_age=60)) == ([], 1)


def test_without_a_lifetime_the_sessions_names_are_trusted_until_changed(django_setup):
    from ws4redis_mw.groups import user_groups

    user = user_with_groups("gA")
    session = session_read_at(["gA"], time.time())
    a_day_later = time.time() + 86400
    assert queries(lambda: user_groups(session, user, max_age=None, now=a_day_later)) == (["gA"], 0)


def test_user_removed_from_a_group_stops_getting_its_messages_on_a_new_socket(server, connect):
    from test_protocol import assert_silent, facility, recv

    from conftest import Http

    member = Http(server.http)
    username, group, name = "r" + uuid.uuid4().hex[:8], "g" + uuid.uuid4().hex[:8], facility()
    member.login(username, groups=group)
    before = connect(f"/ws/{name}?subscribe-group&subscribe-broadcast", cookie=member.cookie_header())
    member.publish(name, "to the group", groups=[group])
    assert recv(before) == "to the group"

    status, _, body = member.request("/groups", urllib.parse.urlencode({"username": username, "groups": ""}).encode())
    assert status == 200, body
    time.sleep(1.5)  # WS4REDIS_GROUPS_LIFETIME is 1 s in the test project
    after = connect(f"/ws/{name}?subscribe-group&subscribe-broadcast", cookie=member.cookie_header())
    member.publish(name, "to the group again", groups=[group])
    assert_silent(after)
    member.publish(name, "to everyone", broadcast=True)
    assert recv(after) == "to everyone"


def handshake_queries(cookie: str) -> tuple:
    """The channels and the number of queries of the handshake's Django part, as the middleware runs it."""
    from django.test import RequestFactory

    from ws4redis_mw import audience
    from ws4redis_mw.settings import process_settings
    from ws4redis_mw.subscriber import RedisSubscriber

    environ = RequestFactory().get("/ws/chat", {"subscribe-group": ""}, HTTP_COOKIE=cookie, HTTP_HOST="127.0.0.1").environ

    def run():
        request = audience.django_request(environ, process_settings())
        subscriber = RedisSubscriber(settings=process_settings())
        subscriber.set_pubsub_channels(request, ["subscribe-group"])
        return subscriber.subscriptions

    return queries(run)


def test_a_handshake_queries_session_and_user_only_while_the_names_are_young(django_setup):
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import override_settings

    from ws4redis_mw.groups import store_groups

    user = user_with_groups("gQ")
    session = SessionStore()
    session["_auth_user_id"], session["_auth_user_backend"] = str(user.pk), "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    store_groups(session, user)
    session.save()
    cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
    with override_settings(WS4REDIS_GROUPS_LIFETIME=60):
        # The session's SELECT and the user's SELECT; none for the groups.
        assert handshake_queries(cookie) == (["group:gQ:chat"], 2)
        session["ws4redis:memberof_at"] = time.time() - 3600
        session.save()
        # At worst one more, once: the process keeps what it read.
        assert handshake_queries(cookie) == (["group:gQ:chat"], 3)
        assert handshake_queries(cookie) == (["group:gQ:chat"], 2)
