"""Template context for pages that open websockets, as ws4redis gives it.

Add ``"ws4redis_mw.context_processors.default"`` to the ``context_processors``
of ``TEMPLATES`` and write, in a template::

    <script>
    var ws4redis = WS4Redis({
        uri: "{{ WEBSOCKET_URI }}foobar?subscribe-broadcast&publish-broadcast",
        heartbeat_msg: {{ WS4REDIS_HEARTBEAT }},
        receive_message: function (msg) { ... }
    });
    </script>
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from django.conf import settings as django_settings
from django.utils.safestring import SafeString, mark_safe

from .settings import process_settings

__all__ = ["default"]


def default(request: Any) -> Dict[str, Any]:
    """``WEBSOCKET_URI`` and ``WS4REDIS_HEARTBEAT`` for the templates.

    ``WEBSOCKET_URI`` is ``ws://`` (``wss://`` when the request is secure), the
    host (``WEBSOCKET_HOST`` if set, as in ws4redis, else the request's own)
    and ``WEBSOCKET_URL``: ``ws://example.com/ws/``; append the facility and
    the flags.  ``WS4REDIS_HEARTBEAT`` is a JavaScript literal, the quoted
    heartbeat string or ``null``, to write unquoted into a script.
    """
    settings = process_settings()  # parsed once per process (read again after override_settings)
    scheme = "wss://" if request.is_secure() else "ws://"
    host = websocket_host() or request.get_host()
    return {
        "WEBSOCKET_URI": scheme + host + settings.websocket_url,
        "WS4REDIS_HEARTBEAT": _js_literal(settings.heartbeat or None),
    }


def websocket_host() -> Optional[str]:
    """``WEBSOCKET_HOST``: the host (and port) of ``WEBSOCKET_URI`` in templates; ``None``: the request's own host."""
    value: Optional[str] = getattr(django_settings, "WEBSOCKET_HOST", None)
    return value


def _js_literal(value: Any) -> SafeString:
    # JSON is a JavaScript literal; escaping <, > and & as well keeps a
    # "</script>" inside the string from ending the script element.
    text = json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return mark_safe(text)
