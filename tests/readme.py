"""The README read as data: its fenced code blocks and its tables, by section.

tests/test_readme.py runs the Quick start and the "Serving it" commands from
here, and tests/test_docs.py checks the settings table, so that the tests
fail when the README drifts from what it documents.
"""

from __future__ import annotations

import re
from typing import Dict, List

from servers import ROOT

README = ROOT / "README.md"


def section(title: str, text: str = "") -> str:
    """The text of the ``## title`` section, up to the next ``## `` heading."""
    text = text or README.read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def code_blocks(text: str) -> List[str]:
    """The fenced code blocks of ``text``, without their fences."""
    return re.findall(r"^```[a-z]*\n(.*?)^```$", text, re.S | re.M)


def block_starting_with(text: str, first_line: str) -> str:
    """The one code block whose first line starts with ``first_line`` (a file name in a comment)."""
    found = [block for block in code_blocks(text) if block.startswith(first_line)]
    assert len(found) == 1, f"expected one code block starting with {first_line!r}, found {len(found)}"
    return found[0]


def table(text: str) -> List[Dict[str, str]]:
    """The rows of the first Markdown table in ``text``, as {header: cell}."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len(lines) >= 2, "no table"
    def split(line: str) -> List[str]:
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    headers = split(lines[0])
    return [dict(zip(headers, split(line), strict=True)) for line in lines[2:]]


def first_code_span(cell: str) -> str:
    """The first `code` in a table cell, or ''."""
    match = re.search(r"`([^`]+)`", cell)
    return match.group(1) if match else ""
