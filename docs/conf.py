"""Sphinx configuration: Markdown pages (MyST), the API reference from docstrings, furo.

``pip install -e '.[docs]'`` is all the build needs, offline:
``sphinx-build -W -b html docs docs/_build/html``. The extra brings the
server's dependencies too, so the reference documents the real
``cohrt_sync.server`` rather than a mock of it.
"""

from __future__ import annotations

import cohrt_sync

project = "cohrt-sync"
release = cohrt_sync.__version__
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sphinxcontrib.mermaid",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
myst_heading_anchors = 3
# A ```mermaid fence renders on GitHub and, through sphinxcontrib-mermaid, in the HTML.
myst_fence_as_directive = ["mermaid"]
html_theme = "furo"
html_title = f"cohrt-sync {release}"
# The Flask and Django adapters' reference builds without the [flask] or [django] extra.
autodoc_mock_imports = ["flask", "django"]
