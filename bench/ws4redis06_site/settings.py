"""django-websocket-redis 0.6 as its README sets it up, for bench/compare.py (its own virtualenv)."""
import os
from urllib.parse import urlsplit

_redis = urlsplit(os.environ["BENCH_REDIS"])
SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions", "ws4redis"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("BENCH_DB", ":memory:")}}
ROOT_URLCONF = "ws4redis06_site.urls"
WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = {"host": _redis.hostname, "port": _redis.port, "db": 0}
WS4REDIS_EXPIRE = 0  # nothing kept, as for every server here
WS4REDIS_HEARTBEAT = None
