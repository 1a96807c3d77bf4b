import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

from ws4redis_mw import WebSocketMiddleware  # noqa: E402

application = WebSocketMiddleware(get_wsgi_application())
