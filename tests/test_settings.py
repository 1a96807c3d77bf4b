"""Settings read from Django: the operations settings, their defaults and what is refused."""

from __future__ import annotations

import pytest

from ws4redis_mw.settings import Settings, SettingsError, load


def test_operations_settings_have_documented_defaults():
    settings = Settings()
    assert (settings.redis_timeout, settings.redis_health_interval, settings.publisher_timeout) == (2.0, 2.0, 3.0)
    assert settings.metrics_url is None and settings.metrics_allowed == ["127.0.0.1", "::1"]


def test_operations_settings_are_read_from_django(django_setup):
    from django.test import override_settings

    with override_settings(WS4REDIS_REDIS_TIMEOUT=1, WS4REDIS_REDIS_HEALTH_INTERVAL="0.5", WS4REDIS_PUBLISHER_TIMEOUT=4,
                           WS4REDIS_METRICS_URL="/m", WS4REDIS_METRICS_ALLOWED=("10.0.0.0/8",)):
        settings = load()
    assert (settings.redis_timeout, settings.redis_health_interval, settings.publisher_timeout) == (1.0, 0.5, 4.0)
    assert settings.metrics_url == "/m" and settings.metrics_allowed == ["10.0.0.0/8"]


@pytest.mark.parametrize("name", ["WS4REDIS_REDIS_TIMEOUT", "WS4REDIS_REDIS_HEALTH_INTERVAL", "WS4REDIS_PUBLISHER_TIMEOUT"])
def test_timeouts_of_zero_are_refused(name, django_setup):
    from django.test import override_settings

    with override_settings(**{name: 0}), pytest.raises(SettingsError, match=name):
        load()
