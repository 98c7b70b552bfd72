"""Docs keep up with the code: public names have docstrings, pages are linked."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Iterator, Tuple

import pytest

import cohrt_sync
import cohrt_sync.server

DOCS = Path(__file__).resolve().parent.parent / "docs"

PUBLIC = [(cohrt_sync, n) for n in cohrt_sync.__all__ if not n.startswith("__")] + [
    (cohrt_sync.server, n) for n in cohrt_sync.server.__all__
]


def _public_members(cls: type) -> Iterator[Tuple[str, object]]:
    """The public methods and properties a class defines itself."""
    for attr, member in vars(cls).items():
        if not attr.startswith("_") and (
            inspect.isfunction(member) or isinstance(member, property)
        ):
            yield attr, member


@pytest.mark.parametrize("module,name", PUBLIC, ids=[n for _, n in PUBLIC])
def test_public_name_has_a_docstring(module: object, name: str) -> None:
    obj = getattr(module, name)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return  # constants and markers document themselves where defined
    assert inspect.getdoc(obj), f"{name} has no docstring"
    if inspect.isclass(obj):
        for attr, member in _public_members(obj):
            assert inspect.getdoc(member), f"{name}.{attr} has no docstring"


@pytest.mark.parametrize("module,name", PUBLIC, ids=[n for _, n in PUBLIC])
def test_inherited_public_members_have_docstrings(module: object, name: str) -> None:
    # Some public classes are assembled from parts (Client's HTTP calls, Channel's
    # reader), whose methods vars() of the class itself does not show.
    obj = getattr(module, name)
    if not inspect.isclass(obj):
        return
    for base in obj.__mro__[1:]:
        if base.__module__.startswith("cohrt_sync."):
            for attr, member in _public_members(base):
                assert inspect.getdoc(member), f"{name}.{attr} ({base.__name__}) has no docstring"


def test_every_page_is_in_the_index() -> None:
    index = (DOCS / "index.md").read_text()
    toctree = set(re.findall(r"^([a-z_]+)$", index, flags=re.M))
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert pages <= toctree, pages - toctree


def test_api_reference_renders_every_hook_spec() -> None:
    # automodule :members: documents what __all__ lists; a hook missing from it
    # would be missing from the reference.
    from cohrt_sync import hookspecs

    specs = {n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
             if n.startswith("on_")}
    assert specs and specs <= set(hookspecs.__all__), specs - set(hookspecs.__all__)
    assert ".. automodule:: cohrt_sync.hookspecs\n   :members:" in (DOCS / "api.md").read_text()
