"""The WSGI application for every server: Django, with websockets under WEBSOCKET_URL."""

import os

from django.core.wsgi import get_wsgi_application

from ws4redis_mw import WebSocketMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatserver.settings")

application = WebSocketMiddleware(get_wsgi_application())
