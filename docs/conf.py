"""Sphinx configuration: Markdown pages (MyST) plus the API reference from docstrings."""

from __future__ import annotations

project = "cohrt-sync"
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
myst_heading_anchors = 3
html_theme = "alabaster"
# The Flask extension's reference builds without the [flask] extra installed.
autodoc_mock_imports = ["flask"]
