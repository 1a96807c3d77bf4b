"""Sphinx configuration of the documentation site (``make docs`` builds it into docs/_build/html).

Why Sphinx with MyST-Parser: Django's ecosystem documents itself with Sphinx
(Django, Channels, most packages on Read the Docs), and ws4redis itself had a
Sphinx site on Read the Docs, so users know the shape; autodoc gives the API
reference from the docstrings the code already has, so the two cannot drift;
and MyST reads the existing Markdown pages as they are, so that they stay
readable on the repository too.

The build is strict (``make docs``: ``-W --keep-going -n``): a broken
relative link between pages, an unknown cross-reference or a missing anchor
is an error.  Nothing is fetched from the network (no intersphinx, no
linkcheck): references to Django, redis-py or the standard library are left
as plain text (``nitpick_ignore_regex`` below).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE / "_ext")]

import ws4redis_mw  # noqa: E402

project = "ws4redis_mw"
author = "ws4redis_mw contributors"
copyright = "ws4redis_mw contributors"
release = ws4redis_mw.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "settings_reference",  # docs/_ext: the settings reference from ws4redis_mw/settings.py
    "repository_links",  # docs/_ext: links to files outside docs/ go to the repository
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "benchmarks/*.md", "Thumbs.db", ".DS_Store"]

# Headings get anchors, so that the pages' links to `page.md#a-heading` resolve
# (and a link to a heading that does not exist is a warning, an error under -W).
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}

# Nitpicky: every cross-reference must resolve, except to the libraries whose
# inventories we do not fetch (no network), and type names autodoc takes from
# annotations that are not documented on this site.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(django|redis|gevent|geventwebsocket|websockets|werkzeug|typing|collections|_?io|socket|ssl|threading)(\..*)?"),
    (r"py:.*", r"(str|int|float|bool|bytes|dict|list|tuple|set|object|None|Any|Optional|Union|Callable|Iterable|Iterator"
               r"|Dict|List|Tuple|Mapping|Sequence|Type|NoReturn|TracebackType|BaseException|Exception|ValueError"
               r"|type|NamedTuple|Path|TypeVar|Literal|Protocol)"),
    (r"py:.*", r"ws4redis_mw\.(?!middleware\.WebSocketMiddleware$|publisher\.RedisPublisher$).*"),
    (r"py:.*", r"[A-Z][A-Za-z]+"),  # internal classes named in annotations (Settings, Hub, Bridge...)
    (r"py:class", r"'RedisMessage'"),  # a quoted annotation
    (r"py:func", r"process_settings|serve"),  # internal functions a docstring names
]
suppress_warnings_always = ["misc.highlighting_failure"]  # deployment.md's nginx excerpt has "..." in a block

html_theme = "alabaster"
html_title = f"ws4redis_mw {release}"
html_static_path: list[str] = []
html_theme_options = {"description": "Websockets for Django over Redis pub/sub, from one WSGI middleware",
                      "fixed_sidebar": True}

# docs/migrating.md comes from another branch; until it is merged, its toctree
# entry must not fail the build (once it exists this is inert).
suppress_warnings = suppress_warnings_always + ([] if (HERE / "migrating.md").exists() else ["toc.not_readable"])
