"""The pluggy API the client reads, checked on the installed pluggy.

``cohrt_sync.hookcalls`` calls each hook implementation itself, so one that
raises cannot starve the others. It reads ``HookCaller.get_hookimpls()`` and
the ``function``, ``argnames``, ``plugin_name``, ``wrapper`` and
``hookwrapper`` attributes of :class:`pluggy.HookImpl`: public API since
pluggy 1.3 (1.2 added ``wrapper``; 1.3 exported ``HookImpl``). ``setup.cfg``
pins that range; these tests fail, saying why, on a pluggy outside it.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import re
from pathlib import Path
from typing import Any

import pluggy

import cohrt_sync
from cohrt_sync.hookcalls import hook_plan
from cohrt_sync.plugins import make_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
#: The range setup.cfg pins: the lowest version whose HookImpl attributes are
#: public, and the next major version, which may change them.
LOWEST, BELOW = (1, 3), (2, 0)
READ = ("function", "argnames", "plugin_name", "wrapper", "hookwrapper")


def test_setup_cfg_pins_the_range_these_tests_check() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    deps = cfg["options"]["install_requires"].split()
    assert "pluggy>=1.3,<2" in deps, deps


def test_installed_pluggy_is_in_the_pinned_range() -> None:
    version = importlib.metadata.version("pluggy")
    major_minor = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    assert LOWEST <= major_minor < BELOW, (
        f"pluggy {version} is installed, but cohrt_sync reads HookImpl attributes that are "
        "public API only in pluggy>=1.3,<2 (setup.cfg); install a pluggy in that range"
    )


class Impl:
    @cohrt_sync.hookimpl
    def on_message(self, channel: Any, message: Any) -> None: ...


def test_hookimpls_carry_what_hookcalls_reads() -> None:
    pm = make_plugin_manager()
    pm.register(Impl(), name="mine")
    impls = pm.hook.on_message.get_hookimpls()
    for impl in impls:
        assert isinstance(impl, pluggy.HookImpl)
        missing = [a for a in READ if not hasattr(impl, a)]
        assert not missing, f"pluggy {pluggy.__version__}'s HookImpl lacks {missing}"
    plan = hook_plan("on_message", impls)
    assert plan is not None
    function, argnames, where = plan[0]  # pluggy calls the last registered first
    assert where == "mine.on_message" and argnames == ("channel", "message")
    assert function.__self__.__class__ is Impl
