"""The Channels equivalent of a ws4redis broadcast facility: /ws/<facility>?subscribe-broadcast&publish-broadcast&echo.

The consumer joins the group <facility> when it subscribes, and a message it
receives is group_send to that group when it may publish; the sender gets its
own message back only with ``echo`` (as in ws4redis).
"""
import os
from urllib.parse import parse_qs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_site.settings")

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.urls import path  # noqa: E402

django_app = get_asgi_application()


class Facility(AsyncWebsocketConsumer):
    async def connect(self):
        self.group = self.scope["url_route"]["kwargs"]["facility"]
        flags = parse_qs(self.scope["query_string"].decode(), keep_blank_values=True)
        self.publishes, self.echo = "publish-broadcast" in flags, "echo" in flags
        if "subscribe-broadcast" in flags:
            await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        if self.publishes and text_data is not None:
            await self.channel_layer.group_send(self.group, {"type": "bench.message", "text": text_data, "sender": self.channel_name})

    async def bench_message(self, event):
        if self.echo or event.get("sender") != self.channel_name:
            await self.send(text_data=event["text"])


application = ProtocolTypeRouter({
    "http": django_app,
    "websocket": URLRouter([path("ws/<str:facility>", Facility.as_asgi())]),
})
