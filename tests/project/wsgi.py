import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.project.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

from ws4redis_mw import WebSocketMiddleware  # noqa: E402


def save_coverage_at_uwsgi_exit() -> None:
    """Under uWSGI, measured by ``make test``: save the worker's coverage data when it stops.

    uWSGI's processes end without Python's exit handlers, so coverage (started
    by its ``.pth`` file in uWSGI's embedded Python) would save nothing.  The
    middleware's own exit hook, set up next, closes the websockets and then
    calls this one, so what the close runs is measured too.
    """
    try:
        import coverage
        import uwsgi
    except ImportError:
        return
    measuring = coverage.Coverage.current()
    if measuring is None:
        return

    def save() -> None:
        measuring.stop()
        measuring.save()

    uwsgi.atexit = save


save_coverage_at_uwsgi_exit()
application = WebSocketMiddleware(get_wsgi_application())
