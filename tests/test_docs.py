"""The documentation agrees with the code: settings, their defaults, close codes.

The settings table of README.md must name every setting the package reads
(``settings.py``, and the few read elsewhere with ``getattr``), with the
default the code has wherever the README's default is a Python literal.
"""

from __future__ import annotations

import ast
import dataclasses
import re

from readme import first_code_span, section, table

from ws4redis_mw.settings import Settings

from servers import ROOT

PACKAGE = ROOT / "ws4redis_mw"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "examples" / "chatserver" / "README.md"]


def settings_read_by_the_code() -> dict:
    """{setting name: Settings field or None}: settings.SOURCES (ours, not Django's own), and getattr(django_settings, "NAME")."""
    from ws4redis_mw.settings import SOURCES

    names = {name: field for field, (name, _) in SOURCES.items() if name.startswith(("WS4REDIS_", "WEBSOCKET_"))}
    for path in PACKAGE.rglob("*.py"):
        for name in re.findall(r'getattr\(django_settings, "((?:WS4REDIS|WEBSOCKET)_[A-Z0-9_]+)"', path.read_text()):
            names.setdefault(name, None)
    return names


def readme_settings() -> dict:
    return {first_code_span(row["setting"]): first_code_span(row["default"]) for row in table(section("Settings"))}


def test_every_setting_the_code_reads_is_in_the_readme_table():
    code = settings_read_by_the_code()
    assert len(code) >= 12  # the parsing above still finds them
    assert sorted(set(code) - set(readme_settings())) == []


def test_the_readme_table_names_no_setting_the_code_does_not_read():
    assert sorted(set(readme_settings()) - set(settings_read_by_the_code())) == []


def test_readme_defaults_are_the_codes():
    fields = {field.name: field for field in dataclasses.fields(Settings)}
    wrong = {}
    for name, field_name in settings_read_by_the_code().items():
        if field_name is None:
            continue
        field = fields[field_name]
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        try:
            documented = ast.literal_eval(readme_settings()[name])
        except (ValueError, SyntaxError):
            continue  # not a literal (a description)
        if documented != default:
            wrong[name] = (documented, default)
    assert wrong == {}


def test_too_slow_is_the_close_code_of_the_code_everywhere():
    """bridge.py closes a too slow client with 1013; no doc may give it another code (docs/js-client.md said 1008)."""
    code = re.search(r'close\(([\w.]+), f?"client too slow', (PACKAGE / "bridge.py").read_text()).group(1)
    if not code.isdigit():  # an enum member, CloseCode.TRY_AGAIN_LATER
        code = re.search(rf"\b{code.split('.')[-1]} = (\d{{4}})", (PACKAGE / "frames.py").read_text()).group(1)
    for path in DOCS:
        text = re.sub(r"\s+", " ", path.read_text())
        # A sentence, or a table row, that mentions a too slow client and a close code.
        for sentence in re.split(r"(?<=[.;:|])\s", text):
            if "too slow" in sentence:
                codes = set(re.findall(r"\b1\d{3}\b", sentence))
                assert codes <= {code}, (path.name, sentence)
    close_codes = section("Refusals and close codes", (ROOT / "README.md").read_text().replace("### ", "## "))
    row = next(r for r in table(close_codes) if "too slow" in r["when"])
    assert row["after it"] == code


def test_js_client_options_table_has_the_scripts_defaults():
    script = (PACKAGE / "static" / "ws4redis_mw" / "ws4redis.js").read_text()
    block = re.search(r"var DEFAULTS = \{(.*?)\};", script, re.S).group(1)
    defaults = dict(re.findall(r"(\w+): ([^,\s]+)", block))
    documented = {}
    for row in table(section("Options", (ROOT / "docs" / "js-client.md").read_text())):
        name = first_code_span(row["option"]).split("(")[0]
        documented[name] = first_code_span(row["default"]) or "null"  # "none", "(required)"
    assert sorted(documented) == sorted(defaults)
    assert {name: value for name, value in documented.items() if defaults[name] != value} == {}


def test_every_setting_the_code_reads_is_documented_in_the_site_reference():
    """docs/settings.md renders settings.py's own documentation (docs/_ext/settings_reference.py): none may lack it."""
    import sys

    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        from settings_reference import documented_settings
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
    documented = {setting.name: setting for setting in documented_settings()}
    assert sorted(set(settings_read_by_the_code()) - set(documented)) == []
    assert sorted(name for name, setting in documented.items() if len(setting.doc.split()) < 4) == []
