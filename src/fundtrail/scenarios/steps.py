"""The demo's building blocks: a named step, what the steps share, and how a step ended.

The steps themselves live in :mod:`fundtrail.scenarios.demo` (the chain investigation) and
:mod:`fundtrail.scenarios.agency` (the demo agency: users, case, evidence, freeze, agreement, audit);
:data:`fundtrail.scenarios.demo.DEMO_STEPS` puts them in order, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

DEFAULT_SEED = 7
DEFAULT_SIZE = "medium"
WORLD_DIR = "world"
REPORTS_DIR = "reports"


class StepStatus(StrEnum):
    """How a demo step ended."""

    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


class StepSkipped(Exception):
    """Raised by a step that cannot run here (its layer is missing, or an earlier step's result)."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step did."""

    name: str
    title: str
    status: StepStatus
    message: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "message": self.message,
            "seconds": round(self.seconds, 2),
        }


@dataclass(eq=False)
class DemoContext:
    """What the steps share: the home, the options, one chain-store connection, and their results."""

    home: Path
    seed: int = DEFAULT_SEED
    size: str = DEFAULT_SIZE
    chain: str = "btc"
    shared_data: Path | None = None
    state: dict[str, Any] = field(default_factory=dict)
    hints: list[str] = field(default_factory=list)
    _store: Any = None

    @property
    def world_dir(self) -> Path:
        """Where the generated world is."""
        return self.home / WORLD_DIR

    @property
    def reports_dir(self) -> Path:
        """Where the demo writes its reports."""
        return self.home / REPORTS_DIR

    def store(self) -> Any:
        """The home's chain store (opened once, closed when the demo ends)."""
        if self._store is None:
            from fundtrail.store import ChainStore

            self._store = ChainStore.open_home(self.home)
        return self._store

    def close(self) -> None:
        """Close the chain store if a step opened it."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def need(self, key: str, step: str) -> Any:
        """An earlier step's result; skips the calling step when it is missing."""
        if key not in self.state:
            raise StepSkipped(f"needs the {step} step, which did not complete")
        return self.state[key]


@dataclass(frozen=True, slots=True)
class DemoStep:
    """A named step: ``run(context)`` does the work and returns a one-line message."""

    name: str
    title: str
    run: Callable[[DemoContext], str]
    needs: tuple[tuple[str, str], ...] = ()
    """Optional packages the step imports, as (module, extra of ``fundtrail`` that installs it)."""
