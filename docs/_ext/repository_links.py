"""Links from the pages to files outside docs/ (``../bench/README.md``, ``noxfile.py``) go to the repository.

On the repository those relative links work as they are; on the site the
files are not pages.  Before MyST resolves its references (and warns about
these), each one whose target is an existing file of the repository outside
``docs/`` becomes a link to that file on the repository's web page, the
``Source`` (or ``Repository``) URL of pyproject.toml's ``[project.urls]``;
without one it becomes the path as plain code.  A link to a file that does
not exist is still a warning, so still an error under ``-W``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import tomllib
from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def repository_url() -> Optional[str]:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text()).get("project", {}).get("urls", {})
    for key in ("Source", "Repository", "source", "repository"):
        if key in urls:
            return str(urls[key]).rstrip("/")
    return None


def outside_docs(target: str, document: Path) -> Optional[Path]:
    """The repository file (or folder) a link names, if it is outside docs/ and exists."""
    path_part = target.split("#", 1)[0]
    if not path_part or "://" in path_part:
        return None
    candidates = [Path(path_part)] if Path(path_part).is_absolute() else [document.parent / path_part, ROOT / path_part]
    for candidate in candidates:
        for path in (candidate, candidate.with_suffix(".md")) if not candidate.suffix else (candidate,):
            path = path.resolve()
            if path.exists() and ROOT in path.parents and DOCS not in (path, *path.parents):
                return path
    return None


class RepositoryLinks(SphinxPostTransform):
    default_priority = 5  # before MyST's reference resolver (9)

    def run(self, **kwargs: Any) -> None:
        base = repository_url()
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") not in ("myst", "doc"):
                continue
            source = Path(node.source or self.env.doc2path(self.env.docname)).resolve()
            path = outside_docs(node["reftarget"], source)
            if path is None:
                continue
            relative = path.relative_to(ROOT).as_posix()
            text = node.astext()
            if base:
                kind = "tree" if path.is_dir() else "blob"
                new: nodes.Node = nodes.reference("", text, refuri=f"{base}/{kind}/main/{relative}", internal=False)
            else:
                new = nodes.literal(text, relative) if text in (relative, path.name) else nodes.inline(text, f"{text} ({relative})")
            node.replace_self(new)


def setup(app: Any) -> dict:
    app.add_post_transform(RepositoryLinks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
