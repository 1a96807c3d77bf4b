"""Views the tests call over HTTP: plain pages, a streamed body, publishing and login."""

import json

from django.contrib.auth import authenticate, login
from django.contrib.auth.models import Group, User
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from ws4redis_mw import SELF, RedisMessage, RedisPublisher, RedisUnavailable
from ws4redis_mw.metrics import stats as metrics_stats


def hello(request):
    response = HttpResponse("hello from django", status=203)
    response["X-Custom"] = "kept"
    return response


def websocket_uri(request):
    """The context processor's WEBSOCKET_URI: shows the host (and port) Django sees behind a proxy."""
    from ws4redis_mw.context_processors import default

    return HttpResponse(default(request)["WEBSOCKET_URI"], content_type="text/plain")


def stream(request):
    return StreamingHttpResponse((f"chunk{i}\n" for i in range(3)), content_type="text/plain")


@csrf_exempt
def publish(request):
    """POST JSON {facility, message, broadcast, users, groups, sessions, expire} to publish."""
    body = json.loads(request.body)
    audience = {key: body[key] for key in ("broadcast", "users", "groups", "sessions") if key in body}
    for key in ("users", "groups", "sessions"):
        if audience.get(key) == "SELF":
            audience[key] = [SELF]
    publisher = RedisPublisher(facility=body["facility"], request=request, **audience)
    try:
        publisher.publish_message(RedisMessage(body["message"]), expire=body.get("expire"))
    except RedisUnavailable as exc:
        return JsonResponse({"error": str(exc)}, status=503)
    return JsonResponse({"ok": True})


@csrf_exempt
def login_view(request):
    """POST username (created on first use) and optional comma-separated groups; logs in."""
    username = request.POST["username"]
    user, created = User.objects.get_or_create(username=username)
    if created:
        user.set_password("pw")
        user.save()
    for name in filter(None, request.POST.get("groups", "").split(",")):
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    login(request, authenticate(request, username=username, password="pw"))
    return JsonResponse({"user": username, "session": request.session.session_key})


@csrf_exempt
def logout_view(request):
    """POST: Django's logout() of the requesting session."""
    from django.contrib.auth import logout

    logout(request)
    return JsonResponse({"ok": True})


@csrf_exempt
def set_groups(request):
    """POST username and comma-separated groups: the user's groups become exactly these (no login)."""
    user = User.objects.get(username=request.POST["username"])
    user.groups.set([Group.objects.get_or_create(name=name)[0] for name in filter(None, request.POST.get("groups", "").split(","))])
    return JsonResponse({"user": user.username, "groups": sorted(g.name for g in user.groups.all())})


def token(request):
    """A websocket token for the logged-in user (the recipe's view); 403 when anonymous."""
    from ws4redis_mw.tokens import make_token

    if not request.user.is_authenticated:
        return JsonResponse({"error": "log in first"}, status=403)
    return JsonResponse({"token": make_token(request)})


def stats(request):
    """What the server process holds: hub counters, live greenlets, memory."""
    import gc
    import resource

    from greenlet import greenlet

    from ws4redis_mw.hub import process_stats

    gc.collect()
    greenlets = sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet) and not obj.dead)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return JsonResponse({"hubs": process_stats(), "greenlets": greenlets, "max_rss_kib": rss_kib, "metrics": metrics_stats()})


def allowed_channels(request, channels):
    """Users must be logged in for user, group or session channels; 'forbidden' refuses all, 'denied' raises
    PermissionDenied (as ws4redis documents), 'explode' raises."""
    if request.path_info.endswith("/forbidden"):
        return []
    if request.path_info.endswith("/denied"):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("not for you")
    if request.path_info.endswith("/explode"):
        raise RuntimeError("a broken WS4REDIS_ALLOWED_CHANNELS hook")
    if not request.user.is_authenticated:
        return [c for c in channels if c.endswith("-broadcast") or c.endswith("-session")]
    return channels
