"""Shared fixtures: the real data folder, temporary homes and stores, and a CLI runner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from typer.testing import CliRunner

from fundtrail.store import ChainStore

ROOT = Path(__file__).resolve().parents[1]

# Property tests explore new random examples on every local run; CI (HYPOTHESIS_PROFILE=ci) runs a fixed,
# reproducible set so that its verdict depends on the code alone.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _shared_data() -> Path:
    env = os.environ.get("FUNDTRAIL_SHARED_DATA")
    if env:
        return Path(env)
    for candidate in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return ROOT.parent / "shared" / "data"


SHARED_DATA = _shared_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data set (../shared/data); CI always has it, so a missing folder fails there."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real data folder {SHARED_DATA} is missing")
        pytest.skip(f"real data folder {SHARED_DATA} is missing")
    return SHARED_DATA


@pytest.fixture()
def store() -> Iterator[ChainStore]:
    """An empty in-memory chain store."""
    s = ChainStore(":memory:")
    yield s
    s.close()


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """An empty FundTrail home directory."""
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture()
def cli():
    """Run the ``fundtrail`` CLI in-process: ``cli("address", "1A...", "--home", str(home))``."""
    from fundtrail.cli.main import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return invoke
