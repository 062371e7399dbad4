"""Docs are tested: the CLI reference is current, and every command and setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

from fundtrail.cli.main import app
from fundtrail.cli.reference import command_paths, render_reference

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current() -> None:
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == render_reference(app), "docs/cli.md is stale: run `fundtrail docs cli > docs/cli.md`"


def test_every_command_appears_in_the_reference() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = [p for p in command_paths(app) if p != "fundtrail" and f"## `{p}`" not in reference]
    assert missing == []


def test_every_environment_setting_is_documented() -> None:
    names = set()
    for path in (ROOT / "src" / "fundtrail").rglob("*.py"):
        names |= set(re.findall(r"[\"'$](FUNDTRAIL_[A-Z0-9_]+)", path.read_text(encoding="utf-8")))
    documented = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert names, "no settings found: the scan is broken"
    assert sorted(n for n in names if n not in documented) == []


def test_the_readme_opens_with_the_two_fresh_machine_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line.strip()]
    assert commands == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
