"""Exercises: a small world handed out without its truth, answered, scored; joint exercises; bad input.

Worlds are the smallest the generator makes (``size=400``: about 470 transactions, under a second). The
module-scoped fixtures build one exercise and one joint exercise and trace each once; tests share them.
"""

from __future__ import annotations

import base64
import csv
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from fundtrail.errors import InputError, IntegrityError, NotFoundError
from fundtrail.scenarios.exercises import (
    create_exercise,
    hand_out,
    load_exercise,
    open_truth,
    parse_answer,
    score_exercise,
    submit_answer,
    true_cash_outs,
)
from fundtrail.scenarios.exercises.sealing import OWNER_KEY

SEED = 3
SIZE = 400
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday


def _trace(handout: Path, chain: str = "btc") -> dict:
    """Ingest a hand-out into a fresh in-memory store, as a trainee would, and trace from the briefing."""
    from fundtrail.analysis.clustering import cluster_addresses
    from fundtrail.analysis.coinjoin import detect_patterns
    from fundtrail.analysis.tracing import trace_funds
    from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
    from fundtrail.intel.tagpacks import import_actorpack, import_tagpack, is_actorpack, tagpack_files
    from fundtrail.store import ChainStore
    from fundtrail.store.ingest import ingest_batches

    folders = [handout] if isinstance(handout, Path) else list(handout)
    seeds = [b["address"] for f in folders for b in json.loads((f / "handout.json").read_text())["briefing"]]
    with ChainStore(":memory:") as store:
        for f in folders:
            ingest_batches(store, chain, read_bitcoin_etl([f / "chain" / "transactions.json"], chain))
        files = tagpack_files([folders[0] / "tagpacks"])
        for path in files:
            if is_actorpack(path):
                import_actorpack(store, path)
        for path in files:
            if not is_actorpack(path):
                import_tagpack(store, path)
        detect_patterns(store, chain)
        cluster_addresses(store, chain)
        return trace_funds(store, chain, seeds, policy="haircut", max_hops=30).to_dict()


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One exercise, handed out at T0, with its truth opened for the tests' own checks."""
    base = tmp_path_factory.mktemp("exercise")
    home = base / "trainer"
    ex = create_exercise(home, "ransomware", "easy", seed=SEED, size=SIZE, now=T0)
    out = base / "handout"
    hand_out(home, ex.id, out, now=T0)
    truth = open_truth(home, ex.id)
    return {"home": home, "id": ex.id, "out": out, "truth": truth, "cash": true_cash_outs(truth)}


@pytest.fixture()
def trainer(made: dict, tmp_path: Path) -> Path:
    """A private copy of the trainer's home (submissions of one test do not leak into another)."""
    copy = tmp_path / "trainer"
    shutil.copytree(made["home"], copy)
    return copy


def _perfect(made: dict, path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["address", "value", "exchange", "jurisdiction"])
        for c in made["cash"].values():
            w.writerow([c.address, c.value, c.exchange_name, c.jurisdiction])
    return path


# ------------------------------------------------------------------------------------------ hand-out


def test_handout_holds_no_truth(made: dict) -> None:
    out: Path = made["out"]
    files = sorted(p for p in out.rglob("*") if p.is_file())
    names = {str(p.relative_to(out)) for p in files}
    assert names >= {"README.md", "handout.json", "chain/transactions.json", "tagpacks/exchanges.yaml"}
    assert not any("truth" in n or "groundtruth" in n or "addresses.jsonl" in n for n in names)
    cash = made["cash"]
    typ = made["truth"]["typologies"][0]
    per_exchange: dict[str, int] = {}
    for c in cash.values():
        per_exchange[c.exchange_name] = per_exchange.get(c.exchange_name, 0) + c.value
    # Amounts by label: per exchange, per deposit address (several deposits), the total cashed out.
    sums = {str(v) for v in per_exchange.values()} | {typ["cashed_out"]}
    sums |= {str(c.value) for c in cash.values() if "+" in c.route or c.value != _single(typ, c.address)}
    everything = b"".join(p.read_bytes() for p in files)
    for value in sums:
        assert value.encode() not in everything, value
    seed_marks = [f"scenario:{SEED}:", f"world {SEED})", made["truth"]["typologies"][0]["actor"], "cash-out"]
    for mark in [*seed_marks, "groundtruth", "cash_outs", "fundtrail-sealed"]:
        assert mark.encode() not in everything, mark
    # Outside the chain data (README, handout.json, tags) no deposit address of a cash-out and no
    # single cash-out amount appears at all; the chain data has them only as the outputs they are.
    public = b"".join(p.read_bytes() for p in files if p.parent.name != "chain")
    for c in cash.values():
        assert c.address.encode() not in public
    for doc in typ["cash_outs"]:
        assert doc["value"].encode() not in public


def _single(typ: dict, address: str) -> int:
    values = [int(c["value"]) for c in typ["cash_outs"] if c["address"] == address]
    return values[0] if len(values) == 1 else -1


def test_truth_is_sealed_to_owner_key(made: dict) -> None:
    home: Path = made["home"]
    key = home / "keys" / OWNER_KEY
    assert key.stat().st_mode & 0o777 == 0o600
    folder = home / "exercises" / made["id"]
    sealed = orjson.loads((folder / "truth.sealed").read_bytes())
    assert (sealed["kem"], sealed["kdf"], sealed["aead"]) == ("X25519", "HKDF-SHA256", "AES-256-GCM")
    # In the clear the trainer's home keeps only what the hand-out has: no truth, no seed.
    clear = [p for p in folder.rglob("*") if p.is_file() and p.name != "truth.sealed"]
    assert not any(p.name.startswith(".") or "groundtruth" in str(p) for p in clear)
    public = b"".join(p.read_bytes() for p in clear if p.parent.name != "chain")
    assert not any(c.address.encode() in public for c in made["cash"].values())
    assert b"cashed_out" not in public and b'"seed"' not in public


# ------------------------------------------------------------------------------------------ scoring


def test_perfect_answer_scores_one(made: dict, trainer: Path, tmp_path: Path) -> None:
    submit_answer(
        trainer, made["id"], "Perfect", _perfect(made, tmp_path / "a.csv"), now=T0 + timedelta(hours=2)
    )
    (s,) = score_exercise(trainer, made["id"])
    assert s.recall_value.value == 1.0 and s.precision_value.value == 1.0
    assert s.recall_count.value == 1.0 and s.exchanges.value == 1.0 and s.jurisdictions.value == 1.0
    assert s.time_taken == timedelta(hours=2)
    domestic = [
        r for r in s.requests if r.jurisdiction == load_exercise(trainer, made["id"]).owner.jurisdiction
    ]
    assert all(r.in_time for r in domestic)
    assert s.in_time.value > 0


def test_late_answer_misses_the_freeze_window(made: dict, trainer: Path, tmp_path: Path) -> None:
    submit_answer(
        trainer, made["id"], "Slow", _perfect(made, tmp_path / "a.csv"), now=T0 + timedelta(days=60)
    )
    (s,) = score_exercise(trainer, made["id"])
    assert s.recall_value.value == 1.0
    assert s.requests and not any(r.in_time for r in s.requests) and s.in_time.value == 0.0


def test_wrong_claims_lower_precision(made: dict, trainer: Path, tmp_path: Path) -> None:
    c = next(iter(made["cash"].values()))
    path = tmp_path / "deposits.json"
    path.write_text(
        json.dumps(
            [
                {"address": c.address, "value": str(c.value), "exchange": c.exchange_name},
                {"address": "bc1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", "value": str(c.value)},
            ]
        )
    )
    submit_answer(trainer, made["id"], "Half", path, now=T0)
    (s,) = score_exercise(trainer, made["id"])
    assert s.precision_value.value == pytest.approx(0.5)
    assert 0 < s.recall_value.value < 1


def test_trace_answer_scores(made: dict, trainer: Path, tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(_trace(made["out"])))
    submission = submit_answer(trainer, made["id"], "Tracers", path, now=T0 + timedelta(hours=3))
    assert submission.kind == "trace" and submission.findings
    (s,) = score_exercise(trainer, made["id"])
    assert s.recall_value.value > 0 and s.precision_value.value > 0.5 and s.exchanges.value > 0


def test_freeze_request_answer(made: dict, trainer: Path, tmp_path: Path) -> None:
    c = next(iter(made["cash"].values()))
    request = {
        "number": "2025-0001-R01",
        "type": "freeze",
        "state": "draft",
        "recipient": c.exchange_name,
        "recipient_jurisdiction": c.jurisdiction,
        "instrument": "domestic-exchange-freeze",
        "subjects": [{"id": 1, "kind": "address", "chain": "btc", "value": c.address}],
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    assert submit_answer(trainer, made["id"], "Desk", path, now=T0).kind == "freeze_request"
    letter = {
        "request": {k: request[k] for k in ("type", "recipient", "recipient_jurisdiction")},
        "assets": [{"kind": "address", "chain": "btc", "value": c.address, "amount": str(c.value)}],
    }
    path.write_text(json.dumps(letter))
    submit_answer(trainer, made["id"], "Desk", path, now=T0)
    first, second = score_exercise(trainer, made["id"])
    for s in (first, second):
        assert s.recall_count.hit == 1 and s.exchanges.hit == 1 and s.precision_value.value == 1.0


def test_tampered_truth_fails_integrity(made: dict, trainer: Path) -> None:
    path = trainer / "exercises" / made["id"] / "truth.sealed"
    doc = orjson.loads(path.read_bytes())
    blob = bytearray(base64.b64decode(doc["ciphertext"]))
    blob[10] ^= 1
    doc["ciphertext"] = base64.b64encode(bytes(blob)).decode()
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(IntegrityError):
        open_truth(trainer, made["id"])
    doc = orjson.loads((made["home"] / "exercises" / made["id"] / "truth.sealed").read_bytes())
    doc["note"] = "edited"  # a header field added: the header is authenticated as associated data
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(IntegrityError):
        open_truth(trainer, made["id"])


def test_wrong_key_is_bad_input(made: dict, trainer: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    create_exercise(other, "theft", "easy", seed=SEED, size=SIZE)
    with pytest.raises(InputError, match="sealed to key"):
        open_truth(trainer, made["id"], other / "keys" / OWNER_KEY)


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"endpoints": [{"address": "bc1q', "truncated"),
        ('{"hello": 1}', "not an answer"),
        ("address,value\nbc1qxyz0000000000,12\nbc1q", "fields"),
        ("address,value\nbc1qxyz0000000000,1.5\n", "whole number"),
        ('{"type": "preservation", "recipient": "X", "subjects": []}', "not a freeze request"),
        ("", "empty"),
    ],
)
def test_bad_answers(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "answer"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        parse_answer(path)


def test_answer_size_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fundtrail.errors import InputLimitError
    from fundtrail.scenarios.exercises import answers

    monkeypatch.setattr(answers, "MAX_ANSWER_BYTES", 10)
    path = tmp_path / "big.json"
    path.write_text("[" + " " * 20 + "]")
    with pytest.raises(InputLimitError):
        parse_answer(path)


def test_unknown_exercise_and_bad_options(made: dict, trainer: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_exercise(trainer, "ex-999")
    with pytest.raises(NotFoundError):
        load_exercise(trainer, "../etc")
    with pytest.raises(InputError, match="typology"):
        create_exercise(tmp_path / "h", "phishing", "easy")
    with pytest.raises(InputError, match="difficulty"):
        create_exercise(tmp_path / "h", "theft", "brutal")
    with pytest.raises(InputError, match="team name"):
        submit_answer(trainer, made["id"], "../x", _perfect(made, tmp_path / "a.csv"))
    with pytest.raises(InputError, match="no part"):
        submit_answer(trainer, made["id"], "T", _perfect(made, tmp_path / "a.csv"), part="b")


# ------------------------------------------------------------------------------------------ joint


@pytest.fixture(scope="module")
def joint(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("joint")
    home = base / "trainer"
    ex = create_exercise(home, "ransomware", "easy", seed=SEED, size=SIZE, joint=True, now=T0)
    hand_out(home, ex.id, base / "handout", now=T0)
    return {"home": home, "id": ex.id, "base": base, "truth": open_truth(home, ex.id)}


def test_joint_parts_split_the_cash_outs(joint: dict) -> None:
    base: Path = joint["base"]
    a, b = base / "handout" / "part-a", base / "handout" / "part-b"
    ex = load_exercise(joint["home"], joint["id"])
    assert json.loads((a / "handout.json").read_text())["agency"]["name"] == ex.parts[0].agency
    assert json.loads((b / "handout.json").read_text())["agency"]["name"] == ex.parts[1].agency
    assert ex.parts[1].agency in (b / "README.md").read_text()
    txids = {c["txid"] for t in joint["truth"]["typologies"] for c in t["cash_outs"]}
    for part in (a, b):
        rows = (part / "chain" / "transactions.json").read_bytes()
        held = {t for t in txids if t.encode() in rows}
        assert held and held != txids


def test_joint_combined_answer_scores_higher(joint: dict, tmp_path: Path) -> None:
    base: Path = joint["base"]
    a, b = base / "handout" / "part-a", base / "handout" / "part-b"
    home = tmp_path / "trainer"
    shutil.copytree(joint["home"], home)
    alone_a = tmp_path / "a.json"
    alone_a.write_text(json.dumps(_trace(a)))
    combined = tmp_path / "ab.json"
    combined.write_text(json.dumps(_trace([a, b])))
    empty_b = tmp_path / "b.csv"
    empty_b.write_text("address,value\n")  # part b alone has no lead to start from
    submit_answer(home, joint["id"], "Team A", alone_a, part="a", now=T0 + timedelta(hours=1))
    submit_answer(home, joint["id"], "Team B", empty_b, part="b", now=T0 + timedelta(hours=1))
    submit_answer(home, joint["id"], "Joint", combined, part="all", now=T0 + timedelta(hours=2))
    sa, sb, sab = score_exercise(home, joint["id"])
    assert sab.recall_value.value > sa.recall_value.value >= sb.recall_value.value
    assert sab.points > max(sa.points, sb.points)


# ------------------------------------------------------------------------------------------ CLI


@pytest.fixture()
def ft():  # type: ignore[no-untyped-def]
    """The commands a trainer and a trainee use, registered as ``fundtrail.cli.main`` registers them
    (only these nouns, so that the test depends on nothing else), run in-process."""
    import importlib

    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    for noun in ("ingest", "tags", "cluster", "trace", "exercise"):
        importlib.import_module(f"fundtrail.cli.{noun}").register(app)
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def test_cli_end_to_end(ft, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli = ft
    trainer, trainee = tmp_path / "trainer", tmp_path / "trainee"
    r = cli(
        "exercise",
        "create",
        "--typology",
        "ransomware",
        "--difficulty",
        "easy",
        "--seed",
        str(SEED),
        "--size",
        str(SIZE),
        "--home",
        str(trainer),
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.output
    ex = json.loads(r.stdout)["id"]
    out = tmp_path / "handout"
    assert cli("exercise", "hand-out", ex, "-o", str(out), "--home", str(trainer)).exit_code == 0
    assert not list(out.rglob("*truth*"))
    h = ["--home", str(trainee)]
    assert (
        cli("ingest", "bitcoin-etl", str(out / "chain" / "transactions.json"), "--chain", "btc", *h).exit_code
        == 0
    )
    assert cli("tags", "import", *map(str, sorted((out / "tagpacks").glob("*.yaml"))), *h).exit_code == 0
    assert cli("cluster", "--chain", "btc", *h).exit_code == 0
    seeds = [b["address"] for b in json.loads((out / "handout.json").read_text())["briefing"]]
    r = cli("trace", *seeds, "--chain", "btc", "--format", "json", *h)
    assert r.exit_code == 0, r.output
    answer = tmp_path / "trace.json"
    answer.write_text(r.stdout)
    r = cli("exercise", "submit", ex, str(answer), "--team", "Blue", "--home", str(trainer))
    assert r.exit_code == 0, r.output
    r = cli("exercise", "score", ex, "--home", str(trainer), "--format", "json")
    assert r.exit_code == 0, r.output
    (score,) = json.loads(r.stdout)["scores"]
    assert float(score["cash_out"]["recall_value"]["value"]) > 0
    assert score["time_taken_seconds"] is not None
    r = cli("exercise", "board", "--home", str(trainer), "-o", str(tmp_path / "board"))
    assert r.exit_code == 0 and "Blue" in r.stdout
    assert (tmp_path / "board" / "board.png").stat().st_size > 0 and (
        tmp_path / "board" / "board.svg"
    ).exists()
    # Bad input: one line, exit 2; a tampered sealed file: exit 1.
    bad = tmp_path / "bad.json"
    bad.write_text('{"endpoints": [')
    r = cli("exercise", "submit", ex, str(bad), "--team", "Blue", "--home", str(trainer))
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    r = cli("exercise", "score", "ex-404", "--home", str(trainer))
    assert r.exit_code == 2 and "not found" in r.stderr
    sealed = trainer / "exercises" / ex / "truth.sealed"
    doc = orjson.loads(sealed.read_bytes())
    doc["ciphertext"] = ("B" if doc["ciphertext"][0] != "B" else "C") + doc["ciphertext"][1:]
    sealed.write_bytes(orjson.dumps(doc))
    r = cli("exercise", "score", ex, "--home", str(trainer))
    assert r.exit_code == 1 and "authentication" in r.stderr


def test_submission_is_audited(case_db, made: dict, tmp_path: Path, ft) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from fundtrail.audit.models import AuditRecord

    shutil.copytree(made["home"] / "exercises", case_db.home / "exercises", dirs_exist_ok=True)
    shutil.copytree(made["home"] / "keys", case_db.home / "keys", dirs_exist_ok=True)
    answer = _perfect(made, tmp_path / "a.csv")
    r = ft("exercise", "submit", made["id"], str(answer), "--team", "Blue", "--home", str(case_db.home))
    assert r.exit_code == 0, r.output
    with case_db.session() as session:
        actions = session.execute(select(AuditRecord.action)).scalars().all()
    assert "exercise.submit" in actions


# ------------------------------------------------------------------------------------------ cross-chain


def test_cross_chain_exercise_end_to_end(tmp_path: Path) -> None:
    """A cross-chain exercise: the store export and tags handed out without the truth, ingested into a
    fresh home, conversions detected, each report traced and the traces scored per chain and asset."""
    import importlib

    import typer
    from typer.testing import CliRunner

    from fundtrail.scenarios.exercises import true_deposits

    app = typer.Typer()
    for noun in ("store", "tags", "conversions", "trace", "exercise"):
        importlib.import_module(f"fundtrail.cli.{noun}").register(app)
    runner = CliRunner()

    def cli(*args: str):  # type: ignore[no-untyped-def]
        r = runner.invoke(app, list(args), catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r

    trainer, trainee, out = tmp_path / "trainer", tmp_path / "trainee", tmp_path / "handout"
    r = cli("exercise", "create", "--typology", "cross-chain", "--difficulty", "easy", "--seed", "7",
            "--home", str(trainer), "--format", "json")  # fmt: skip
    ex = json.loads(r.stdout)
    assert ex["typology"] == "cross-chain" and ex["chain"] == "btc,eth,bsc,polygon"
    cli("exercise", "hand-out", ex["id"], "-o", str(out), "--home", str(trainer))
    truth = open_truth(trainer, ex["id"])
    deposits = true_deposits(truth)
    assert {d.chain for d in deposits} >= {"bsc", "polygon"} and len(
        {(d.chain, d.asset) for d in deposits}
    ) > 1
    # no truth in the hand-out: no sealed file, no seed, no cash-out amount
    assert not list(out.rglob("*truth*")) and (out / "store" / "logs.parquet").is_file()
    text = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file() and p.suffix != ".parquet")
    assert b"seed" not in text.lower() and all(str(d.value).encode() not in text for d in deposits)
    h = ["--home", str(trainee)]
    cli("store", "import", str(out / "store"), *h)
    cli("tags", "import", *map(str, sorted((out / "tagpacks").glob("*.yaml"))), *h)
    cli("conversions", "--detect", *h)
    endpoints = []
    for b in json.loads((out / "handout.json").read_text())["briefing"]:
        r = cli("trace", b["address"], "--chain", b["chain"], "--format", "json", *h)
        endpoints += json.loads(r.stdout)["endpoints"]
    answer = tmp_path / "trace.json"
    answer.write_text(json.dumps({"endpoints": endpoints}))
    cli("exercise", "submit", ex["id"], str(answer), "--team", "Blue", "--home", str(trainer))
    # a perfect answer from the truth: every deposit with its chain, asset, exchange and jurisdiction
    perfect = tmp_path / "perfect.csv"
    with perfect.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["address", "value", "chain", "asset", "exchange", "jurisdiction"])
        for d in deposits:
            w.writerow([d.address, d.value, d.chain, d.asset, d.exchange_name, d.jurisdiction])
    cli("exercise", "submit", ex["id"], str(perfect), "--team", "Red", "--home", str(trainer))
    traced, best = json.loads(
        cli("exercise", "score", ex["id"], "--home", str(trainer), "-f", "json").stdout
    )["scores"]
    assert float(traced["cash_out"]["recall_value"]["value"]) > 0
    assert float(traced["cash_out"]["precision_value"]["value"]) > 0.9
    assert any(float(a["recall_value"]["value"]) > 0 for a in traced["cash_out"]["by_asset"])
    assert {a["chain"] for a in traced["cash_out"]["by_asset"]} >= {"bsc", "polygon"}
    assert (
        best["cash_out"]["recall_value"]["value"] == 1.0
        and best["cash_out"]["precision_value"]["value"] == 1.0
    )
    assert best["exchanges"]["recall"]["value"] == 1.0 and best["jurisdictions"]["recall"]["value"] == 1.0
    with pytest.raises(InputError, match="joint"):
        create_exercise(trainer, "cross-chain", "easy", seed=7, joint=True)
