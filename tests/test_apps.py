"""The Django app's own parts: the app-order check."""


def test_app_order_check_warns_when_staticfiles_comes_first():
    from ws4redis_mw.apps import runserver_order_problem

    assert runserver_order_problem(["django.contrib.staticfiles", "ws4redis_mw"]) is not None
    assert runserver_order_problem(["ws4redis_mw", "django.contrib.staticfiles"]) is None
    assert runserver_order_problem(["ws4redis_mw"]) is None
