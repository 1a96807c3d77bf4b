"""The test project behind a middleware given its own Settings (a key prefix Django's settings do not have)."""

import dataclasses
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

from ws4redis_mw import WebSocketMiddleware  # noqa: E402
from ws4redis_mw.settings import process_settings  # noqa: E402

application = WebSocketMiddleware(get_wsgi_application(), settings=dataclasses.replace(process_settings(), prefix="x"))
