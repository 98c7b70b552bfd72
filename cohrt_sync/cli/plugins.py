"""``cohrt-sync plugins``: the installed plugins, their distributions, versions and hooks.

Listing is the one place that imports every installed plugin, because hooks
are known only from the code; a plugin that fails to import is listed with
its error instead of its hooks. Other commands load only the plugins named
with ``--plugin`` (or all with ``--plugins``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
from typing import Any, Dict, List, Optional

import pluggy

from .. import hookspecs
from ..hookspecs import PROJECT_NAME
from ..plugins import ENTRYPOINT_GROUP, installed_entry_points

__all__ = ["describe_plugins", "list_plugins"]


def _distributions() -> Dict[str, Any]:
    """Entry-point name → the distribution that declares it (``ep.dist`` is 3.10+ only)."""
    found: Dict[str, Any] = {}
    for dist in importlib.metadata.distributions():
        for ep in dist.entry_points:
            if ep.group == ENTRYPOINT_GROUP:
                found.setdefault(ep.name, dist)
    return found


def _hooks(plugin: object) -> List[str]:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    return sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())


def describe_plugins() -> List[Dict[str, Any]]:
    """One dict per installed plugin: name, module, distribution, version, hooks, error.

    :returns: sorted by name; ``hooks`` is empty and ``error`` set for a
        plugin that failed to import or to register.
    """
    dists = _distributions()
    rows = []
    for name, ep in sorted(installed_entry_points().items()):
        dist = dists.get(name)
        row: Dict[str, Any] = {
            "name": name,
            "module": ep.value,
            "distribution": dist.metadata["Name"] if dist is not None else None,
            "version": dist.version if dist is not None else None,
            "hooks": [],
            "error": None,
        }
        try:
            row["hooks"] = _hooks(ep.load())
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}".splitlines()[0]
        rows.append(row)
    return rows


def list_plugins(args: argparse.Namespace) -> int:
    """Print the installed plugins, as text or (``--json``) a JSON list."""
    rows = describe_plugins()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no cohrt_sync plugins installed (entry-point group {ENTRYPOINT_GROUP!r})")
        return 0
    for row in rows:
        dist: Optional[str] = row["distribution"]
        origin = f"{dist} {row['version']}" if dist else "unknown distribution"
        print(f"{row['name']}  ({origin}, module {row['module']})")
        if row["error"]:
            print(f"    failed to import: {row['error']}")
        else:
            print(f"    hooks: {', '.join(row['hooks']) or 'none'}")
    print("load them with --plugin NAME (repeatable) or --plugins (all)")
    return 0
