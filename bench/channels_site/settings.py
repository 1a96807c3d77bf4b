"""Django Channels 4 + channels_redis under daphne, for bench/compare.py (its own virtualenv).

BENCH_LAYER picks the layer: "pubsub" (RedisPubSubChannelLayer) or "core"
(RedisChannelLayer, the default one), both with their default options.
"""
import os

SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["daphne", "channels"]
DATABASES = {}
ROOT_URLCONF = "channels_site.urls"
ASGI_APPLICATION = "channels_site.asgi.application"
_LAYERS = {"pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer", "core": "channels_redis.core.RedisChannelLayer"}
CHANNEL_LAYERS = {"default": {"BACKEND": _LAYERS[os.environ.get("BENCH_LAYER", "pubsub")],
                              "CONFIG": {"hosts": [os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")]}}}
