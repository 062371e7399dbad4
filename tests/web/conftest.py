"""Fixtures of the dashboard tests: the API tests' agency (loaded from tests/api/conftest.py), and for
the browser tests a demo home served by ``fundtrail serve`` with Debian's Chromium driven by Playwright."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("fundtrail_api_test_fixtures",
                                               Path(__file__).resolve().parents[1] / "api" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _fixtures
_spec.loader.exec_module(_fixtures)

world = _fixtures.world
chain_home = _fixtures.chain_home
agency = _fixtures.agency
agency_template = _fixtures.agency_template
PASSWORD = _fixtures.PASSWORD
