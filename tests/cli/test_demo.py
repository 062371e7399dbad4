"""``fundtrail demo`` on a small world: every chain step runs and the cash-out exchanges are printed."""

from __future__ import annotations

import json
from pathlib import Path

from fundtrail.scenarios import demo as demo_service
from fundtrail.scenarios.demo import DemoContext, DemoStep, StepStatus, run_demo
from fundtrail.scenarios.groundtruth import TypologyKind, load_truth

CHAIN_STEPS = ["world", "ingest", "tags", "sanctions", "patterns", "cluster", "trace", "report"]


def test_demo_prints_the_cash_out_exchanges(cli, home: Path) -> None:
    result = cli("demo", "--home", str(home), "--seed", "3", "--size", "900")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    case = load_truth(home / "world").typologies_of(TypologyKind.RANSOMWARE)[0]
    trace = json.loads((home / "reports" / "ransomware-trace.json").read_text())
    reached = {e["entity"]: e["jurisdiction"] for e in trace["endpoints"] if e["category"] == "exchange"}
    truth = {c.exchange_name: c.jurisdiction for c in case.cash_outs}
    assert len(reached) >= 2 and set(reached) <= set(truth)
    assert "Where the ransom went" in text
    line = text.split("Cash-out exchanges: ")[1]
    for name, jurisdiction in reached.items():
        assert f"{name} ({jurisdiction})" in line
    report = (home / "reports" / "demo-report.md").read_text()
    assert all(name in report for name in reached)
    assert (home / "chain.duckdb").exists()


def test_demo_json_runs_every_chain_step_and_again_idempotently(cli, home: Path) -> None:
    first = json.loads(cli("demo", "--home", str(home), "--size", "600", "--format", "json").output)
    again = cli("demo", "--home", str(home), "--size", "600", "--format", "json")
    assert again.exit_code == 0
    second = json.loads(again.output)
    for run in (first, second):
        assert run["ok"]
        names = [s["name"] for s in run["steps"]]
        assert [n for n in names if n in CHAIN_STEPS] == CHAIN_STEPS  # in order; later layers add theirs
        assert all(s["status"] in ("done", "skipped") for s in run["steps"])
        assert {s["name"] for s in run["steps"] if s["status"] == "done"} >= set(CHAIN_STEPS) - {"sanctions"}
    assert "already" in second["steps"][0]["message"]
    assert first["summary"]["exchanges"] == second["summary"]["exchanges"]


def test_a_failing_import_or_a_broken_step_does_not_stop_the_demo(home: Path) -> None:
    """Layers are imported directly (no guard): a step whose import fails is a failed step, reported."""
    def needs_a_layer(ctx: DemoContext) -> str:
        import fundtrail.not_built_yet  # noqa: F401

        return "unreachable"

    def broken(ctx: DemoContext) -> str:
        raise RuntimeError("boom")

    steps = [
        DemoStep("later-layer", "A later layer", needs_a_layer),
        DemoStep("broken", "Broken", broken),
        *[s for s in demo_service.DEMO_STEPS if s.name in ("report",)],
    ]
    run = run_demo(home, size="600", steps=steps)
    status = {s.name: s.status for s in run.steps}
    assert status == {
        "later-layer": StepStatus.FAILED,
        "broken": StepStatus.FAILED,
        "report": StepStatus.SKIPPED,
    }
    assert "fundtrail.not_built_yet" in run.steps[0].message
    assert "boom" in run.steps[1].message and not run.ok


def test_add_step_places_a_step_after_another() -> None:
    saved = list(demo_service.DEMO_STEPS)
    try:
        demo_service.add_step(DemoStep("case", "Open the case", lambda ctx: "ok"), after="trace")
        names = [s.name for s in demo_service.DEMO_STEPS]
        assert names.index("case") == names.index("trace") + 1
    finally:
        demo_service.DEMO_STEPS[:] = saved


def test_demo_rejects_a_bad_size(cli, home: Path) -> None:
    result = cli("demo", "--home", str(home), "--size", "enormous")
    assert result.exit_code == 2
