"""Docs keep up with the code: public names have docstrings, pages are linked."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import cohrt_sync
import cohrt_sync.server

DOCS = Path(__file__).resolve().parent.parent / "docs"

PUBLIC = [(cohrt_sync, n) for n in cohrt_sync.__all__ if not n.startswith("__")] + [
    (cohrt_sync.server, n) for n in cohrt_sync.server.__all__
]


@pytest.mark.parametrize("module,name", PUBLIC, ids=[n for _, n in PUBLIC])
def test_public_name_has_a_docstring(module: object, name: str) -> None:
    obj = getattr(module, name)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return  # constants and markers document themselves where defined
    assert inspect.getdoc(obj), f"{name} has no docstring"
    if inspect.isclass(obj):
        for attr, member in vars(obj).items():
            if attr.startswith("_") or not (
                inspect.isfunction(member) or isinstance(member, property)
            ):
                continue
            assert inspect.getdoc(member), f"{name}.{attr} has no docstring"


def test_every_page_is_in_the_index() -> None:
    index = (DOCS / "index.md").read_text()
    toctree = set(re.findall(r"^([a-z_]+)$", index, flags=re.M))
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert pages <= toctree, pages - toctree
