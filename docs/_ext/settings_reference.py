"""The settings reference, generated from ws4redis_mw/settings.py's own definitions.

Design rules of this module:

* **The code is the source.**  A setting's documentation is the ``#:``
  comment above its field in :class:`ws4redis_mw.settings.Settings`; its
  Django name is ``SOURCES``'; its default is the field's own.  Settings read
  where they are used (``settings._READ_BY``) are documented by the
  docstring of the function that reads them, and their default is the one
  that function gives ``getattr(django_settings, NAME, DEFAULT)``.  Nothing
  needs Django's settings to be configured (the tests' process keeps its own).  Nothing here is written by hand,
  so the reference cannot drift from the code.
* **One reader for the site and the tests.**  :func:`documented_settings` is
  what the ``ws4redis-settings`` directive renders and what
  tests/test_docs.py checks against every setting the code reads (a setting
  without documentation fails there).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path
from typing import Any, List, NamedTuple


class SettingDoc(NamedTuple):
    name: str  #: the Django setting, ``WS4REDIS_EXPIRE``
    default: str  #: the default as Python source, ``3600``
    doc: str  #: what it means (reStructuredText from the code's comments), '' if none


def _field_comments(source: str) -> dict[str, str]:
    """{field name: its ``#:`` comment} in ``class Settings`` of settings.py's source."""
    lines = source.splitlines()
    tree = ast.parse(source)
    settings = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings")
    comments = {}
    for node in settings.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            doc: List[str] = []
            line = node.lineno - 2  # the line above, 0-based
            while line >= 0 and lines[line].strip().startswith("#:"):
                doc.insert(0, lines[line].strip()[2:].strip())
                line -= 1
            comments[node.target.id] = " ".join(doc)
    return comments


def _getattr_default(function: Any, name: str) -> str:
    """The default ``function`` reads ``name`` with: the value of ``getattr(django_settings, name, DEFAULT)``'s third argument."""
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(function)))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
                and len(node.args) == 3 and isinstance(node.args[1], ast.Constant) and node.args[1].value == name):
            value = eval(compile(ast.Expression(node.args[2]), "<default>", "eval"), function.__globals__)  # noqa: S307
            return repr(value)
    raise LookupError(f"{function.__qualname__} does not read {name} with getattr(django_settings, ...)")


def documented_settings() -> List[SettingDoc]:
    """Every setting ws4redis_mw reads, in settings.py's order, with its default and documentation."""
    from ws4redis_mw import settings as module

    comments = _field_comments(Path(inspect.getfile(module)).read_text())
    found = []
    for field in dataclasses.fields(module.Settings):
        name, _ = module.SOURCES[field.name]
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        if field.name == "trusted_proxies":
            default = None  # the setting's default; the field holds it parsed
        found.append(SettingDoc(name, repr(default), comments.get(field.name, "")))
    for name, path in module._READ_BY.items():
        read = module.import_string_or_callable(path)
        assert read is not None
        found.append(SettingDoc(name, _getattr_default(read, name), inspect.cleandoc(read.__doc__ or "")))
    return found


def setup(app: Any) -> dict:
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class SettingsReference(SphinxDirective):
        """``.. ws4redis-settings::`` (reStructuredText: in MyST, inside ``{eval-rst}``): a definition list of every setting."""

        def run(self) -> list:
            self.env.note_dependency(str(Path(__file__).resolve().parents[2] / "ws4redis_mw" / "settings.py"))
            lines = []
            for setting in documented_settings():
                lines += [f".. setting:: {setting.name}", "", f"``{setting.name}``",
                          f"   Default: ``{setting.default}``", "", *(f"   {line}" for line in setting.doc.splitlines()), ""]
            container = nodes.container()
            self.state.nested_parse(StringList(lines, source="ws4redis_mw/settings.py"), self.content_offset, container)
            return container.children

    app.add_directive("ws4redis-settings", SettingsReference)
    # ``.. setting:: NAME`` targets and a :setting:`NAME` role, as Django's own docs have.
    app.add_crossref_type("setting", "setting", indextemplate="pair: %s; setting")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
