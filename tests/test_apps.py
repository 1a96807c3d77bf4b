"""The Django app's own parts: the app-order check."""


def test_app_order_check_warns_when_staticfiles_comes_first():
    from ws4redis_mw.apps import runserver_order_problem

    assert runserver_order_problem(["django.contrib.staticfiles", "ws4redis_mw"]) is not None
    assert runserver_order_problem(["ws4redis_mw", "django.contrib.staticfiles"]) is None
    assert runserver_order_problem(["ws4redis_mw"]) is None


def test_deploy_check_warns_when_anonymous_clients_may_publish(django_setup):
    from django.test import override_settings

    from ws4redis_mw.apps import check_client_publishing

    with override_settings(DEBUG=False, WS4REDIS_ALLOWED_CHANNELS=None):
        assert [message.id for message in check_client_publishing()] == ["ws4redis_mw.W003"]
    with override_settings(DEBUG=False, WS4REDIS_ALLOWED_CHANNELS="tests.project.views.allowed_channels"):
        assert check_client_publishing() == []
    with override_settings(DEBUG=True, WS4REDIS_ALLOWED_CHANNELS=None):
        assert check_client_publishing() == []
