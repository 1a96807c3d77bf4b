"""Reading the settings from Django: defaults, conversions, the operations settings, and values refused at startup."""

import django.conf
import pytest

from ws4redis_mw.settings import Settings, SettingsError, load, process_settings


@pytest.fixture
def django_settings(django_setup):
    from django.test import override_settings

    return override_settings


def test_defaults_apply_where_django_has_no_setting(django_settings):
    with django_settings(WS4REDIS_MAX_BACKLOG=None):
        settings = load()
    assert settings.max_backlog is None
    assert settings.ping_interval == Settings().ping_interval == 25.0


def test_numbers_are_converted_and_none_means_no_limit(django_settings):
    with django_settings(WS4REDIS_PING_INTERVAL="5", WS4REDIS_PING_TIMEOUT=None, WS4REDIS_EXPIRE=None):
        settings = load()
    assert (settings.ping_interval, settings.ping_timeout, settings.expire) == (5.0, None, 0)


def test_django_security_settings_are_read_too(django_settings):
    with django_settings(CSRF_TRUSTED_ORIGINS=["https://*.example.com"], SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        settings = load()
    assert settings.csrf_trusted_origins == ("https://*.example.com",)
    assert settings.secure_proxy_ssl_header == ("HTTP_X_FORWARDED_PROTO", "https")


def test_the_old_message_count_setting_is_refused_with_its_replacement_named(django_settings):
    with django_settings(WS4REDIS_MAX_PENDING=1000), pytest.raises(SettingsError, match="WS4REDIS_MAX_BACKLOG"):
        load()


@pytest.mark.parametrize("url", ["ws/", "/ws"])
def test_websocket_url_must_start_and_end_with_a_slash(django_settings, url):
    with django_settings(WEBSOCKET_URL=url), pytest.raises(SettingsError):
        load()


def test_a_prefix_with_braces_is_refused_at_startup_naming_the_setting(django_settings):
    with django_settings(WS4REDIS_PREFIX="{site}"), pytest.raises(SettingsError, match="WS4REDIS_PREFIX"):
        load()
    with pytest.raises(ValueError, match="hash tag"):
        Settings(prefix="{site}")


def test_a_value_that_cannot_be_converted_names_its_setting(django_settings):
    with django_settings(WS4REDIS_MAX_MESSAGE_SIZE="big"), pytest.raises(SettingsError, match="WS4REDIS_MAX_MESSAGE_SIZE"):
        load()


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


def test_ws4redis_module_attributes_give_the_values_as_read(django_setup):
    from ws4redis_mw import settings as module

    settings = process_settings()
    assert module.WS4REDIS_EXPIRE == settings.expire
    assert module.WEBSOCKET_URL == settings.websocket_url
    assert module.WS4REDIS_HEARTBEAT == settings.heartbeat
    assert module.WS4REDIS_CONNECTION == settings.connection
    assert module.WS4REDIS_GROUPS_LIFETIME == float(django.conf.settings.WS4REDIS_GROUPS_LIFETIME)
    assert module.WS4REDIS_TOKEN_MAX_AGE == float(django.conf.settings.WS4REDIS_TOKEN_MAX_AGE)


def test_an_unknown_ws4redis_module_attribute_says_it_is_not_read():
    from ws4redis_mw import settings as module

    with pytest.raises(AttributeError, match="does not read that setting"):
        module.WS4REDIS_STORE  # noqa: B018


def test_override_settings_reaches_the_process_settings_and_is_undone(django_setup):
    from django.test import override_settings

    before = process_settings().expire
    with override_settings(WS4REDIS_EXPIRE=before + 7, WS4REDIS_PREFIX="t"):
        assert (process_settings().expire, process_settings().prefix) == (before + 7, "t")
    assert process_settings().expire == before


def test_a_bad_trusted_proxies_value_is_refused_at_startup_with_its_name(django_settings):
    with django_settings(WS4REDIS_TRUSTED_PROXIES=["10.0.0.300"]), \
            pytest.raises(SettingsError, match="WS4REDIS_TRUSTED_PROXIES: '10.0.0.300' is neither"):
        load()


def test_trusted_proxies_are_read_parsed(django_settings):
    with django_settings(WS4REDIS_TRUSTED_PROXIES=2):
        settings = load()
    assert (settings.trusted_proxies.networks, settings.trusted_proxies.hops) == (None, 2)
