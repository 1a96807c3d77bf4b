"""Django settings of the project the tests serve; tuned through environment variables."""

import json
import os

BASE_DIR = os.path.dirname(os.path.abspath(__file__))
SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "ws4redis_mw",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.project.urls"
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("WS4REDIS_TEST_DB", os.path.join(BASE_DIR, "db.sqlite3"))},
}
USE_TZ = True
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "tests.project.logjson.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler",
                             **({"formatter": "json"} if os.environ.get("WS4REDIS_TEST_LOG_JSON") else {})}},
    "loggers": {"ws4redis_mw": {"handlers": ["console"], "level": os.environ.get("WS4REDIS_LOG_LEVEL", "INFO"), "propagate": False}},
}

WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = os.environ.get("WS4REDIS_TEST_REDIS", "redis://127.0.0.1:6379/0")
if WS4REDIS_CONNECTION.startswith("{"):  # a dict, as ws4redis documents them
    WS4REDIS_CONNECTION = json.loads(WS4REDIS_CONNECTION)
WS4REDIS_EXPIRE = int(os.environ.get("WS4REDIS_TEST_EXPIRE", "10"))
WS4REDIS_PREFIX = os.environ.get("WS4REDIS_TEST_PREFIX") or None
WS4REDIS_HEARTBEAT = os.environ.get("WS4REDIS_TEST_HEARTBEAT", "--heartbeat--")
WS4REDIS_HEARTBEAT_INTERVAL = float(os.environ.get("WS4REDIS_TEST_HEARTBEAT_INTERVAL", "4"))
WS4REDIS_MAX_MESSAGE_SIZE = int(os.environ.get("WS4REDIS_TEST_MAX_MESSAGE_SIZE", str(64 * 1024)))
WS4REDIS_MAX_BACKLOG = int(os.environ.get("WS4REDIS_TEST_MAX_BACKLOG", str(1024 * 1024)))
WS4REDIS_PING_INTERVAL = float(os.environ.get("WS4REDIS_TEST_PING_INTERVAL", "25"))
WS4REDIS_PING_TIMEOUT = float(os.environ.get("WS4REDIS_TEST_PING_TIMEOUT", "20"))
WS4REDIS_ALLOWED_CHANNELS = "tests.project.views.allowed_channels"
# "a,b": the subprotocols spoken; unset: the client's first offer (ws4redis' behaviour).
if os.environ.get("WS4REDIS_TEST_SUBPROTOCOLS"):
    WS4REDIS_SUBPROTOCOLS = os.environ["WS4REDIS_TEST_SUBPROTOCOLS"].split(",")


def _optional(name, default=None):
    """An env var as a number, or the default (None: no limit); the tests and benchmarks set limits explicitly."""
    value = os.environ.get(name, "")
    return default if value == "" else float(value)


# Production defaults are limits; the test project lifts them unless a test sets them.
WS4REDIS_MAX_FRAME_RATE = _optional("WS4REDIS_TEST_MAX_FRAME_RATE")
WS4REDIS_MAX_PUBLISH_RATE = _optional("WS4REDIS_TEST_MAX_PUBLISH_RATE")
WS4REDIS_MAX_PUBLISH_BYTES_RATE = _optional("WS4REDIS_TEST_MAX_PUBLISH_BYTES_RATE")
WS4REDIS_PUBLISH_BURST = int(_optional("WS4REDIS_TEST_PUBLISH_BURST", 100))
WS4REDIS_MAX_SOCKETS_PER_IP = _optional("WS4REDIS_TEST_MAX_SOCKETS_PER_IP")
WS4REDIS_MAX_SOCKETS_PER_USER = _optional("WS4REDIS_TEST_MAX_SOCKETS_PER_USER")
WS4REDIS_ANONYMOUS_EXPIRE = int(_optional("WS4REDIS_TEST_ANONYMOUS_EXPIRE", 0))
WS4REDIS_ANONYMOUS_HISTORY = os.environ.get("WS4REDIS_TEST_ANONYMOUS_HISTORY") == "1"
WS4REDIS_HANDSHAKE_TIMEOUT = _optional("WS4REDIS_TEST_HANDSHAKE_TIMEOUT", 10.0)
# Short, so that tests see a group change take effect on new sockets without waiting a minute.
WS4REDIS_GROUPS_LIFETIME = float(os.environ.get("WS4REDIS_TEST_GROUPS_LIFETIME", "1"))
# Token authentication for clients without the session cookie (?token=...); short, so that
# the expiry test waits little.
WS4REDIS_PROCESS_REQUEST = "ws4redis_mw.tokens.process_request"
WS4REDIS_TOKEN_MAX_AGE = float(os.environ.get("WS4REDIS_TEST_TOKEN_MAX_AGE", "3"))
WS4REDIS_REDIS_TIMEOUT = float(os.environ.get("WS4REDIS_TEST_REDIS_TIMEOUT", "2"))
WS4REDIS_REDIS_HEALTH_INTERVAL = float(os.environ.get("WS4REDIS_TEST_REDIS_HEALTH_INTERVAL", "2"))
WS4REDIS_METRICS_URL = os.environ.get("WS4REDIS_TEST_METRICS_URL", "/metrics")
WS4REDIS_METRICS_ALLOWED = os.environ.get("WS4REDIS_TEST_METRICS_ALLOWED", "127.0.0.1,::1").split(",")
# History on for every channel (size,ttl), so that the whole protocol suite also shows that
# clients which do not ask for recovery see nothing new; "" turns it off.
_history = os.environ.get("WS4REDIS_TEST_HISTORY", "100,300")
WS4REDIS_HISTORY = dict(zip(("size", "ttl"), map(int, _history.split(",")), strict=True)) if _history else None
WS4REDIS_MAX_RECOVER = int(os.environ.get("WS4REDIS_TEST_MAX_RECOVER", "300"))
# The documented deployment's: nginx sets X-Forwarded-Proto (examples/deploy/nginx-site.conf).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# "a,b": a list of trusted proxies (addresses, networks, "unix"); unset: the default (loopback, unix, one hop).
if os.environ.get("WS4REDIS_TEST_TRUSTED_PROXIES") is not None:
    WS4REDIS_TRUSTED_PROXIES = [entry for entry in os.environ["WS4REDIS_TEST_TRUSTED_PROXIES"].split(",") if entry]
