"""The three chat pages.

* Broadcast: every page on facility ``chat`` hears every message; the browser
  publishes itself (``publish-broadcast``), no view involved.
* User and group chat: the browser only listens (``subscribe-user``,
  ``subscribe-group``); it POSTs a message here, and the view picks the
  audience with ``RedisPublisher(users=[...])`` or ``groups=[...]``.

Messages are JSON: ``{"sender": ..., "to": ..., "text": ...}``.

When Redis cannot be reached, a POST gets 503 with ``{"retry": true}`` (not a
500): the page shows "not sent, retrying" and sends again until Redis is back.
"""

import json

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import JsonResponse
from django.shortcuts import render

from ws4redis_mw import RedisMessage, RedisPublisher, RedisUnavailable


def allowed_channels(request, channels):
    """WS4REDIS_ALLOWED_CHANNELS: any subscription, but publishing only to the broadcast."""
    return [c for c in channels if c.startswith("subscribe-") or c == "publish-broadcast"]


def publish(message, **audience):
    """Publish ``message`` (a dict, sent as JSON) with ``RedisPublisher(**audience)``; the view's response."""
    facility = audience.pop("facility")
    try:
        RedisPublisher(facility=facility, **audience).publish_message(RedisMessage(json.dumps(message)))
    except RedisUnavailable:
        # Redis is away (restarting, failing over): the page retries by itself.
        return JsonResponse({"error": "not sent, retrying", "retry": True}, status=503, headers={"Retry-After": "1"})
    return JsonResponse({"ok": True})


def broadcast_chat(request):
    return render(request, "chat/broadcast.html")


@login_required
def user_chat(request):
    if request.method == "POST":
        recipient, text = request.POST.get("to", ""), request.POST.get("text", "").strip()
        if not text or not User.objects.filter(username=recipient).exists():
            return JsonResponse({"error": "a known recipient and some text, please"}, status=400)
        me = request.user.get_username()
        message = {"sender": me, "to": recipient, "text": text}
        # Both ends see the message: the recipient's pages and the sender's own.
        return publish(message, facility="userchat", users=[recipient, me])
    users = User.objects.exclude(pk=request.user.pk).order_by("username")
    return render(request, "chat/user.html", {"users": users})


@login_required
def group_chat(request):
    groups = list(request.user.groups.order_by("name").values_list("name", flat=True))
    if request.method == "POST":
        group, text = request.POST.get("to", ""), request.POST.get("text", "").strip()
        if not text or group not in groups:
            return JsonResponse({"error": "one of your groups and some text, please"}, status=400)
        message = {"sender": request.user.get_username(), "to": group, "text": text}
        return publish(message, facility="groupchat", groups=[group])
    return render(request, "chat/group.html", {"groups": groups})
