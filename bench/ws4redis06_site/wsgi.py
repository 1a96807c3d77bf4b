"""The single-process layout of ws4redis's docs: one uWSGI, websockets under WEBSOCKET_URL, Django for the rest."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ws4redis06_site.settings")

from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from ws4redis.uwsgi_runserver import uWSGIWebsocketServer  # noqa: E402

_django_app = get_wsgi_application()
_websocket_app = uWSGIWebsocketServer()


def application(environ, start_response):
    if environ.get("PATH_INFO", "").startswith(settings.WEBSOCKET_URL):
        return _websocket_app(environ, start_response)
    return _django_app(environ, start_response)
