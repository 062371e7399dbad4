"""Fixtures of the intel tests: the real TagPack folder and a writer of small hand-made packs."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest


@pytest.fixture()
def packs(shared_data: Path) -> Path:
    """The real GraphSense TagPacks folder."""
    return shared_data / "graphsense_tagpacks" / "packs"


@pytest.fixture()
def write_pack(tmp_path: Path):
    """Write a TagPack (YAML text, dedented) to ``tmp_path/name`` and return its path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text).lstrip(), encoding="utf-8")
        return path

    return write
