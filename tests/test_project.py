"""Checks that keep the project's promises honest: README ↔ CI, dependencies."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", setup)


def test_readme_opens_with_two_setup_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2, commands
    main, tests = commands
    assert "pip install" in main and "cohrt-sync " in main
    assert "pip install" in tests and "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci.splitlines()


def test_runtime_dependencies_are_exactly_the_four() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].split("\n")
    # The names, without version ranges (pluggy's is pinned) or comments.
    deps = [re.split(r"[<>=!~;\[ ]", d.strip())[0] for d in lines if d.strip()[:1].isalnum()]
    assert sorted(deps) == ["attrs", "pluggy", "requests", "websocket-client"]


def test_changelog_keeps_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
