"""``fundtrail exercise``: exercises for trainees, with the truth sealed and the answers scored."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from fundtrail.cli.common import (
    DEFAULT_HOME,
    FormatOpt,
    HomeOpt,
    OutputFormat,
    Table,
    chain_tables,
    console,
    handle_errors,
    print_json,
)

app = typer.Typer(help="Exercises: sealed truth, hand-outs, scored answers.", no_args_is_help=True)

TYPOLOGIES = ("ransomware", "theft", "cross-chain")
DIFFICULTIES = ("easy", "medium", "hard")
"""The typologies and difficulties the option help names (those of fundtrail.scenarios.exercises, as
tests/cli/test_startup.py checks), here so that `--help` need not import the exercise generator."""
ExerciseArg = Annotated[str, typer.Argument(help="The exercise id (ex-001 ...).", show_default=False)]
KeyOpt = Annotated[
    Path | None,
    typer.Option("--key", help="The owner's X25519 private key (default HOME/keys/exercise-owner.key)."),
]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="Case-database user recorded in the audit log (default $FUNDTRAIL_USER)."),
]


def _audit(home: Path, as_: str | None, action: str, exercise: str, details: dict[str, Any]) -> None:
    """Record the action in the audit log when the home has a case database."""
    from fundtrail.cases.context import open_operation
    from fundtrail.cases.db import DATABASE_URL_ENV

    if not (home / "cases.sqlite").is_file() and not os.environ.get(DATABASE_URL_ENV):
        return
    with open_operation(home, as_, user_required=False) as ctx:
        ctx.audit(action, "exercise", exercise, details=details)


@app.command("create")
@handle_errors
def create(
    typology: Annotated[str, typer.Option("--typology", "-t", help=f"{' or '.join(TYPOLOGIES)}.")],
    difficulty: Annotated[str, typer.Option("--difficulty", "-d", help=f"{', '.join(DIFFICULTIES)}.")],
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="World seed (default random; a known seed regenerates the truth)."),
    ] = None,
    joint: Annotated[bool, typer.Option("--joint", help="Two agencies, each with part of the data.")] = False,
    chain: Annotated[str, typer.Option("--chain", "-c", help="Bitcoin-like chain of the world.")] = "btc",
    size: Annotated[
        int | None, typer.Option("--size", help="Transactions in the world (default by difficulty).")
    ] = None,
    jurisdiction: Annotated[
        str | None, typer.Option("--jurisdiction", help="The owner agency's jurisdiction (ISO code).")
    ] = None,
    partner: Annotated[
        str | None, typer.Option("--partner-jurisdiction", help="The partner agency's (joint exercise).")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Generate a world for an exercise; its truth is sealed to this home's exercise owner key."""
    chain_tables()
    from fundtrail.scenarios.exercises import create_exercise

    ex = create_exercise(
        home,
        typology,
        difficulty,
        seed=seed,
        joint=joint,
        chain=chain,
        size=size,
        jurisdiction=jurisdiction,
        partner_jurisdiction=partner,
    )
    _audit(
        home, as_, "exercise.create", ex.id, {"typology": typology, "difficulty": difficulty, "joint": joint}
    )
    if fmt is OutputFormat.JSON:
        print_json(ex.to_dict())
        return
    console.print(
        f"[bold]{ex.id}[/] {ex.typology} ({ex.difficulty}), {ex.chain}: truth sealed to key {ex.owner_key}",
        highlight=False,
    )
    for p in ex.parts:
        console.print(
            f"  part {p.name}: {p.agency} ({p.jurisdiction}), blocks {p.heights[0]}-{p.heights[1]}",
            highlight=False,
        )


@app.command("list")
@handle_errors
def list_(home: HomeOpt = DEFAULT_HOME, fmt: FormatOpt = OutputFormat.HUMAN) -> None:
    """The exercises of this home."""
    from fundtrail.scenarios.exercises import list_exercises

    items = list_exercises(home)
    if fmt is OutputFormat.JSON:
        print_json([e.to_dict() for e in items])
        return
    table = Table("id", "typology", "difficulty", "chain", "parts", "created", "handed out")
    for e in items:
        table.add_row(
            e.id,
            e.typology,
            e.difficulty,
            e.chain,
            ", ".join(p.name for p in e.parts),
            e.created_at.isoformat(timespec="seconds"),
            ", ".join(sorted(e.handouts)) or "-",
        )
    console.print(table)


@app.command("hand-out")
@handle_errors
def hand_out_command(
    exercise: ExerciseArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Empty folder for the hand-out.")],
    part: Annotated[
        str | None, typer.Option("--part", help="Part of a joint exercise (a or b; default every part).")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Write the chain data, the public tags and a README for trainees; never the truth."""
    chain_tables()
    from fundtrail.scenarios.exercises import hand_out

    written = hand_out(home, exercise, out, part=part)
    if fmt is OutputFormat.JSON:
        print_json([h.to_dict() for h in written])
        return
    for h in written:
        console.print(f"part {h.part} for {h.agency}: {h.folder} ({len(h.files)} files)", markup=False)


@app.command("submit")
@handle_errors
def submit(
    exercise: ExerciseArg,
    answer: Annotated[Path, typer.Argument(help="Trace JSON, deposits CSV/JSON or freeze request JSON.")],
    team: Annotated[str, typer.Option("--team", help="The team's name.")],
    part: Annotated[
        str | None, typer.Option("--part", help="The team's part of a joint exercise (a, b or all).")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Check a team's answer and store it."""
    chain_tables()
    from fundtrail.scenarios.exercises import submit_answer

    s = submit_answer(home, exercise, team, answer, part=part)
    _audit(
        home,
        as_,
        "exercise.submit",
        exercise,
        {"team": s.team, "part": s.part, "kind": s.kind, "number": s.number, "sha256": s.sha256},
    )
    if fmt is OutputFormat.JSON:
        print_json(s.to_dict())
        return
    console.print(
        f"submission {s.number} of team {s.team} ({s.kind}, part {s.part}): {len(s.findings)} findings",
        markup=False,
    )


def _ratio(r: Any) -> str:
    return f"{r.value:.2f}"


@app.command("score")
@handle_errors
def score(
    exercise: ExerciseArg,
    key: KeyOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    as_: AsOpt = None,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Unseal the truth and score every submission."""
    chain_tables()
    from fundtrail.scenarios.exercises import score_exercise

    scores = score_exercise(home, exercise, key_file=key)
    _audit(home, as_, "exercise.score", exercise, {"submissions": len(scores)})
    if fmt is OutputFormat.JSON:
        print_json({"exercise": exercise, "scores": [s.to_dict() for s in scores]})
        return
    table = Table(
        "#",
        "team",
        "part",
        "kind",
        "recall",
        "precision",
        "exchanges",
        "jurisd.",
        "in time",
        "time",
        "points",
        title=f"exercise {exercise}",
    )
    for s in scores:
        taken = "-" if s.time_taken is None else str(s.time_taken).split(".")[0]
        table.add_row(
            str(s.submission.number),
            s.submission.team,
            s.submission.part,
            s.submission.kind,
            _ratio(s.recall_value),
            _ratio(s.precision_value),
            _ratio(s.exchanges),
            _ratio(s.jurisdictions),
            _ratio(s.in_time),
            taken,
            f"{s.points:.1f}",
        )
    console.print(table)


@app.command("board")
@handle_errors
def board_command(
    exercise: Annotated[str | None, typer.Argument(help="One exercise (default all of them).")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the chart (board.png, board.svg).")
    ] = None,
    key: KeyOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    fmt: FormatOpt = OutputFormat.HUMAN,
) -> None:
    """Every team's best score, as a table and a chart."""
    chain_tables()
    from fundtrail.scenarios.exercises import board, write_board_chart

    rows = board(home, exercise, key_file=key)
    charts = write_board_chart(rows, out) if out is not None else []
    if fmt is OutputFormat.JSON:
        print_json({"rows": [r.to_dict() for r in rows], "charts": [str(p) for p in charts]})
        return
    table = Table(
        "exercise",
        "team",
        "part",
        "subm.",
        "recall",
        "precision",
        "exchanges",
        "in time",
        "points",
        title="Exercise board",
    )
    for r in rows:
        b = r.best
        table.add_row(
            r.exercise,
            r.team,
            b.submission.part,
            str(r.submissions),
            _ratio(b.recall_value),
            _ratio(b.precision_value),
            _ratio(b.exchanges),
            _ratio(b.in_time),
            f"{b.points:.1f}",
        )
    console.print(table)
    for p in charts:
        console.print(f"chart: {p}", markup=False)


def register(root: typer.Typer) -> None:
    """Add ``exercise`` to the root application."""
    root.add_typer(app, name="exercise")
