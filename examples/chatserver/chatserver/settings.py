"""Settings of the chat example.  Redis is read from $WS4REDIS_CONNECTION."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "chatserver-example-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "ws4redis_mw",  # before staticfiles, so that its runserver (with websockets) is the one used
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "chat",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "chatserver.urls"
WSGI_APPLICATION = "chatserver.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "ws4redis_mw.context_processors.default",  # WEBSOCKET_URI, WS4REDIS_HEARTBEAT
            ],
        },
    },
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = LOGOUT_REDIRECT_URL = "/"

# ws4redis_mw
WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = os.environ.get("WS4REDIS_CONNECTION", "redis://127.0.0.1:6379/0")
WS4REDIS_HEARTBEAT = "--heartbeat--"
# A chat shows what arrives while the page is open: keep nothing for later.
# (With, say, 3600, a page opened later first gets each channel's last message.)
WS4REDIS_EXPIRE = 0
# ... but an open page that lost its connection (a server restart, a network
# switch) gets what it missed when it reconnects: the last 100 messages of each
# channel are kept for 5 minutes (the page asks with the "recover" flag).
WS4REDIS_HISTORY = {"size": 100, "ttl": 300}
# The broadcast chat is anonymous on purpose: its messages are recovered too
# (off by default, so that anonymous clients cannot fill Redis).
WS4REDIS_ANONYMOUS_HISTORY = True
# Browsers may subscribe, and publish only to the broadcast; user and group
# messages are sent by the views, which decide who gets them.
WS4REDIS_ALLOWED_CHANNELS = "chat.views.allowed_channels"
