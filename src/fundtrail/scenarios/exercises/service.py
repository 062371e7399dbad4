"""Exercises: a generated world handed to trainees, its truth sealed, their answers scored.

::

    HOME/exercises/ID/
      exercise.json        what is public about the exercise: typology, difficulty, chain, agencies and
                           parts, the briefing (the victims' reports), the payout window, hand-out times
      truth.sealed         the ground truth (cash-outs, exchanges, seed), sealed to the owner's key
      data/chain/          the chain data (bitcoin-etl transactions, as the generator writes them)
      data/store/          instead, for a cross-chain exercise: a chain-store Parquet export (see .crosschain)
      data/tagpacks/       the public TagPacks, scrubbed of anything that names the seed or a cash-out
      submissions/NNN.json a team's answer as findings, with when it came; NNN.answer the file as given

The world is generated into a scratch folder inside the exercise folder; only the chain data and the
scrubbed tags are kept in the clear, and the scratch folder (with ``groundtruth/``) is removed before
:func:`create_exercise` returns. The seed is part of the sealed truth: whoever knows it can generate the
world again, truth included, so it is drawn at random unless given (a given seed is for tests).

A joint exercise splits the chain data at a height between the cash-outs: part ``a`` (the victims'
agency, with the briefing) holds the blocks up to it, part ``b`` (the partner abroad) the blocks after.
Neither part alone shows every cash-out; the agencies score well only by sharing what they hold.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml

from fundtrail.errors import InputError, InputLimitError, NotFoundError, ParseError
from fundtrail.scenarios.exercises.answers import Answer, Finding, parse_answer
from fundtrail.scenarios.exercises.crosschain import CROSS_CHAIN, STORE_DIR, write_cross_chain
from fundtrail.scenarios.exercises.sealing import (
    OwnerKey,
    load_or_create_owner_key,
    load_owner_key,
    seal,
    unseal,
)
from fundtrail.scenarios.groundtruth import (
    CashOut,
    EntityKind,
    GroundTruth,
    Typology,
    TypologyKind,
    load_truth,
)
from fundtrail.scenarios.world import WorldConfig, generate_world
from fundtrail.scenarios.writer import TAGPACK_DIR, TRANSACTIONS

EXERCISE_FORMAT = "fundtrail-exercise/1"
HANDOUT_FORMAT = "fundtrail-exercise-handout/1"
SUBMISSION_FORMAT = "fundtrail-exercise-submission/1"
EXERCISES_DIR = "exercises"
MAX_META_BYTES = 16 << 20
WHOLE = "all"
"""The part of a submission made with all the data (a non-joint exercise, or the agencies combined)."""
_TEAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
_ID = re.compile(r"^ex-[0-9]{3,6}$")


@dataclass(frozen=True, slots=True)
class Difficulty:
    """What a difficulty level sets: the world's size, what the briefing and tags give away, the time."""

    name: str
    transactions: int
    all_seeds: bool
    """The briefing lists every victim's payment (else only the first report)."""
    deposit_tags: bool
    """The public TagPacks keep the deposit addresses learnt from test deposits."""
    payout_days: int
    """Days after the hand-out before the exchanges pay the deposited funds out: a freeze must take
    effect before then."""


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty("easy", 400, True, True, 45),
    "medium": Difficulty("medium", 1_200, True, True, 35),
    "hard": Difficulty("hard", 3_000, False, False, 10),
}
TYPOLOGIES = (*(k.value for k in TypologyKind), CROSS_CHAIN)
"""Typologies of exercises: those the Bitcoin-like generator plays out, and ``cross-chain`` (the
cross-chain generator's btc, eth, bsc and polygon world, see :mod:`.crosschain`)."""


@dataclass(frozen=True, slots=True)
class Part:
    """Who gets which data: an agency, its jurisdiction and the block heights of its chain data."""

    name: str
    agency: str
    jurisdiction: str
    heights: tuple[int, int]
    briefed: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "name": self.name,
            "agency": self.agency,
            "jurisdiction": self.jurisdiction,
            "heights": list(self.heights),
            "briefed": self.briefed,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Part:
        """Read the JSON form."""
        lo, hi = doc["heights"]
        return cls(doc["name"], doc["agency"], doc["jurisdiction"], (int(lo), int(hi)), bool(doc["briefed"]))


@dataclass(frozen=True)
class Exercise:
    """The public record of an exercise (``exercise.json``)."""

    id: str
    typology: str
    difficulty: str
    chain: str
    created_at: datetime
    owner_key: str
    parts: tuple[Part, ...]
    briefing: tuple[dict[str, str], ...]
    payout_days: int
    handouts: dict[str, datetime] = field(default_factory=dict)

    @property
    def joint(self) -> bool:
        """Two agencies, each with a part of the data."""
        return len(self.parts) > 1

    @property
    def owner(self) -> Part:
        """The part of the agency that runs the exercise (the victims' agency)."""
        return self.parts[0]

    def part(self, name: str | None) -> Part | None:
        """The part named ``name`` (None for the whole exercise); InputError for an unknown part."""
        if name is None or name == WHOLE:
            return None
        for p in self.parts:
            if p.name == name.strip().lower():
                return p
        known = ", ".join([p.name for p in self.parts] + [WHOLE]) if self.joint else WHOLE
        raise InputError(f"exercise {self.id} has no part {name!r}; its parts: {known}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "format": EXERCISE_FORMAT,
            "id": self.id,
            "typology": self.typology,
            "difficulty": self.difficulty,
            "chain": self.chain,
            "created_at": self.created_at.isoformat(),
            "owner_key": self.owner_key,
            "joint": self.joint,
            "parts": [p.to_dict() for p in self.parts],
            "briefing": list(self.briefing),
            "payout_days": self.payout_days,
            "handouts": {k: v.isoformat() for k, v in self.handouts.items()},
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Exercise:
        """Read the JSON form."""
        return cls(
            id=doc["id"],
            typology=doc["typology"],
            difficulty=doc["difficulty"],
            chain=doc["chain"],
            created_at=datetime.fromisoformat(doc["created_at"]),
            owner_key=doc["owner_key"],
            parts=tuple(Part.from_dict(p) for p in doc["parts"]),
            briefing=tuple(doc["briefing"]),
            payout_days=int(doc["payout_days"]),
            handouts={k: datetime.fromisoformat(v) for k, v in doc.get("handouts", {}).items()},
        )


# ------------------------------------------------------------------------------------------ files


def exercises_dir(home: Path) -> Path:
    """Where the exercises of a home live."""
    return Path(home) / EXERCISES_DIR


def _folder(home: Path, exercise_id: str) -> Path:
    if not _ID.match(exercise_id):
        raise NotFoundError("exercise", exercise_id)
    folder = exercises_dir(home) / exercise_id
    if not (folder / "exercise.json").is_file():
        raise NotFoundError("exercise", exercise_id)
    return folder


def _read_json(path: Path, limit: int = MAX_META_BYTES) -> Any:
    size = path.stat().st_size
    if size > limit:
        raise InputLimitError(str(path), None, f"{size} bytes is more than {limit}", "MAX_META_BYTES")
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ParseError(str(path), None, f"not JSON: {exc}") from None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def load_exercise(home: Path, exercise_id: str) -> Exercise:
    """The exercise ``exercise_id`` of ``home``; NotFoundError when there is none."""
    path = _folder(home, exercise_id) / "exercise.json"
    doc = _read_json(path)
    if not isinstance(doc, dict) or doc.get("format") != EXERCISE_FORMAT:
        raise ParseError(str(path), None, f"not an exercise record of format {EXERCISE_FORMAT}")
    try:
        return Exercise.from_dict(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise ParseError(str(path), None, f"incomplete exercise record ({exc})") from None


def _save(home: Path, exercise: Exercise) -> None:
    path = exercises_dir(home) / exercise.id / "exercise.json"
    _write_atomic(path, orjson.dumps(exercise.to_dict(), option=orjson.OPT_INDENT_2))


def list_exercises(home: Path) -> list[Exercise]:
    """Every exercise of the home, oldest first."""
    folder = exercises_dir(home)
    if not folder.is_dir():
        return []
    return [
        load_exercise(home, p.name)
        for p in sorted(folder.iterdir())
        if _ID.match(p.name) and (p / "exercise.json").is_file()
    ]


def _new_id(home: Path) -> str:
    folder = exercises_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    n = 1 + max((int(p.name[3:]) for p in folder.iterdir() if _ID.match(p.name)), default=0)
    while True:
        try:
            (folder / f"ex-{n:03d}").mkdir()
            return f"ex-{n:03d}"
        except FileExistsError:  # another create took it
            n += 1


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------ create


def _truth_doc(
    exercise_id: str, seed: int, size: str, truth: GroundTruth, chosen: list[Typology], split: int | None
) -> dict[str, Any]:
    exchanges = [e.to_dict() for e in truth.entities if e.kind is EntityKind.EXCHANGE]
    return {
        "exercise": exercise_id,
        "seed": seed,
        "size": size,
        "chain": truth.chain,
        "heights": list(truth.heights),
        "split_height": split,
        "exchanges": exchanges,
        "typologies": [t.to_dict() for t in chosen],
    }


def _split_height(chosen: list[Typology]) -> int | None:
    """A height with traceable (unmixed) cash-outs on both sides, else any cash-outs on both sides."""
    cash = [c for t in chosen for c in t.cash_outs]
    for pool in ([c for c in cash if not c.is_mixed], cash):
        heights = sorted({c.height for c in pool})
        if len(heights) >= 2:
            return heights[len(heights) // 2 - 1] if len(heights) > 2 else heights[0]
    return None


def _scrub_tagpacks(
    src: Path, dst: Path, *, seed: int, size: str, exercise_id: str, hidden: set[str], deposit_tags: bool
) -> None:
    """Copy the TagPacks without the seed, without tags of ``hidden`` addresses (cash-out deposits)
    and, when not ``deposit_tags``, without any deposit-address tag."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        text = path.read_text(encoding="utf-8")
        text = text.replace(f"generated world {seed}", f"exercise {exercise_id}")
        text = text.replace(f"urn:fundtrail:scenario:{seed}:{size}", f"urn:fundtrail:exercise:{exercise_id}")
        doc = yaml.safe_load(text)
        if isinstance(doc, dict) and isinstance(doc.get("tags"), list):
            doc["tags"] = [
                t
                for t in doc["tags"]
                if t.get("address") not in hidden
                and (deposit_tags or not str(t.get("label", "")).endswith("deposit address"))
            ]
            text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
        (dst / path.name).write_text(text, encoding="utf-8")


def _world(
    seed: int, size: int, chain: str, scratch: Path, typology: str
) -> tuple[GroundTruth, list[Typology]]:
    generate_world(WorldConfig.for_size(size, seed, chain=chain), scratch)
    truth = load_truth(scratch)
    chosen = [t for t in truth.typologies if t.kind.value == typology and t.cash_outs and t.seed_addresses]
    return truth, chosen


def create_exercise(
    home: Path,
    typology: str,
    difficulty: str,
    *,
    seed: int | None = None,
    joint: bool = False,
    chain: str = "btc",
    size: int | None = None,
    jurisdiction: str | None = None,
    partner_jurisdiction: str | None = None,
    now: datetime | None = None,
) -> Exercise:
    """Generate the world of a new exercise, seal its truth to the owner's key, keep the public data."""
    if typology not in TYPOLOGIES:
        raise InputError(f"unknown typology {typology!r}; known: {', '.join(TYPOLOGIES)}")
    level = DIFFICULTIES.get(difficulty)
    if level is None:
        raise InputError(f"unknown difficulty {difficulty!r}; use {', '.join(DIFFICULTIES)}")
    if seed is not None and seed < 0:
        raise InputError(f"the seed must be >= 0, not {seed}")
    now = now or datetime.now(UTC)
    owner = load_or_create_owner_key(home)
    if typology == CROSS_CHAIN:
        if joint:
            raise InputError("a cross-chain exercise cannot be joint yet: its data has no split")
        return _create_cross_chain(home, level, owner, seed, size, jurisdiction, now)
    exercise_id = _new_id(home)
    folder = exercises_dir(home) / exercise_id
    try:
        with tempfile.TemporaryDirectory(dir=folder, prefix=".world-") as tmp:
            scratch = Path(tmp)
            tries = [seed] if seed is not None else [secrets.randbelow(1 << 62) for _ in range(5)]
            for s in tries:
                truth, chosen = _world(s, size or level.transactions, chain, scratch, typology)
                split = _split_height(chosen) if joint else None
                if chosen and (split is not None or not joint):
                    break
            else:
                raise InputError(
                    f"the world of seed {seed} has no {'splittable ' if joint else ''}finished {typology} "
                    "with cash-outs; try another seed or a larger size"
                )
            exchanges = sorted(
                {e.jurisdiction for e in truth.entities if e.kind is EntityKind.EXCHANGE and e.jurisdiction}
            )
            home_jur = (jurisdiction or exchanges[0]).strip().upper()
            partner = (
                (partner_jurisdiction or next((j for j in exchanges if j != home_jur), "ZZ")).strip().upper()
            )
            lo, hi = truth.heights
            if joint:
                assert split is not None
                parts: tuple[Part, ...] = (
                    Part("a", f"{home_jur} police", home_jur, (lo, split), True),
                    Part("b", f"{partner} police", partner, (split + 1, hi), False),
                )
            else:
                parts = (Part("a", f"{home_jur} police", home_jur, (lo, hi), True),)
            victims = [v for t in chosen for v in t.victims]
            shown = victims if level.all_seeds else victims[:1]
            briefing = tuple({"address": v.address, "txid": v.txid, "value": str(v.value)} for v in shown)
            hidden = {c.address for t in chosen for c in t.cash_outs}
            data = folder / "data"
            (data / "chain").mkdir(parents=True)
            shutil.copyfile(scratch / TRANSACTIONS, data / "chain" / TRANSACTIONS)
            _scrub_tagpacks(
                scratch / TAGPACK_DIR,
                data / TAGPACK_DIR,
                seed=s,
                size=truth.size,
                exercise_id=exercise_id,
                hidden=hidden,
                deposit_tags=level.deposit_tags,
            )
            sealed = seal(
                _truth_doc(exercise_id, s, truth.size, truth, chosen, split), owner.public, exercise_id
            )
            (folder / "truth.sealed").write_bytes(sealed)
        exercise = Exercise(
            exercise_id,
            typology,
            level.name,
            truth.chain,
            now,
            owner.key_id,
            parts,
            briefing,
            level.payout_days,
        )
        _save(home, exercise)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return exercise


def _create_cross_chain(
    home: Path,
    level: Difficulty,
    owner: OwnerKey,
    seed: int | None,
    size: int | None,
    jurisdiction: str | None,
    now: datetime,
) -> Exercise:
    """A cross-chain exercise: the store export and tags in ``data/``, the cases' cash-outs sealed."""
    exercise_id = _new_id(home)
    folder = exercises_dir(home) / exercise_id
    try:
        s = seed if seed is not None else secrets.randbelow(1 << 62)
        made = write_cross_chain(
            folder / "data", exercise_id, s, level.name, all_seeds=level.all_seeds, noise=size
        )
        (folder / "truth.sealed").write_bytes(seal(made.truth, owner.public, exercise_id))
        home_jur = (jurisdiction or sorted(made.exchanges.values())[0]).strip().upper()
        exercise = Exercise(
            exercise_id,
            CROSS_CHAIN,
            level.name,
            made.chain,
            now,
            owner.key_id,
            (Part("a", f"{home_jur} police", home_jur, made.heights, True),),
            made.briefing,
            level.payout_days,
        )
        _save(home, exercise)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return exercise


# ------------------------------------------------------------------------------------------ hand-out


@dataclass(frozen=True)
class HandOut:
    """A hand-out written for one part: its folder and files."""

    exercise: str
    part: str
    agency: str
    folder: Path
    files: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "exercise": self.exercise,
            "part": self.part,
            "agency": self.agency,
            "folder": str(self.folder),
            "files": self.files,
        }


def _copy_heights(src: Path, dst: Path, heights: tuple[int, int]) -> None:
    lo, hi = heights
    with src.open("rb") as fin, dst.open("wb") as fout:
        for line in fin:
            height = orjson.loads(line)["block_number"]
            if lo <= height <= hi:
                fout.write(line)


def _readme_cross_chain(exercise: Exercise, part: Part, handed_at: datetime) -> str:
    deadline = (handed_at + timedelta(days=exercise.payout_days)).date().isoformat()
    chains = exercise.chain.split(",")
    lines = [
        f"# FundTrail exercise {exercise.id}: {exercise.typology} ({exercise.difficulty})",
        "",
        f"This hand-out is for **{part.agency}** (jurisdiction {part.jurisdiction}).",
        "",
        "## The situation",
        "",
        "Ransoms paid in bitcoin and funds stolen on Ethereum and BSC were laundered across chains "
        f"({', '.join(chains)}): swapped on DEXs and aggregators, bridged, put through mixing pools. "
        "Find which exchanges received them, on which chain and in which asset, and ask them to freeze "
        "the funds before they pay them out.",
        "",
        f"The exchanges pay deposited funds out on {deadline} ({exercise.payout_days} days after "
        "this hand-out): a freeze must take effect by then.",
        "",
        "## Reports",
        "",
        "| chain | address (where the trace starts) |",
        "|---|---|",
    ]
    lines += [f"| {b.get('chain', '')} | {b['address']} |" for b in exercise.briefing]
    lines += [
        "",
        "## The data",
        "",
        f"- `{STORE_DIR}/`: the transactions, transfers and event logs of every chain, as a FundTrail "
        "chain-store Parquet export",
        "- `tagpacks/`: public attribution tags (GraphSense TagPacks and an ActorPack)",
        "",
        "```",
        f"fundtrail store import {STORE_DIR}/",
        "fundtrail tags import tagpacks/*.yaml",
        "fundtrail conversions --detect",
        "fundtrail trace ADDRESS --chain CHAIN --format json > trace.json",
        "```",
        "",
        "## Your answer",
        "",
        "Give your trainer one of: the trace JSON (one per report, or your own list); a CSV "
        "`address,value,chain,asset,exchange,jurisdiction` of the exchange deposit addresses with the "
        "amounts (base units of the asset) you traced there; or your drafted freeze request(s). Scored per "
        "chain and asset: the share of the cashed-out value you found (recall) and how much of what you "
        "claim is right (precision), averaged over the assets; the exchanges and jurisdictions; your time; "
        "which freezes would have taken effect in time.",
        "",
    ]
    return "\n".join(lines)


def _readme(exercise: Exercise, part: Part, handed_at: datetime) -> str:
    if exercise.typology == CROSS_CHAIN:
        return _readme_cross_chain(exercise, part, handed_at)
    deadline = (handed_at + timedelta(days=exercise.payout_days)).date().isoformat()
    lines = [
        f"# FundTrail exercise {exercise.id}: {exercise.typology} ({exercise.difficulty})",
        "",
        f"This hand-out is for **{part.agency}** (jurisdiction {part.jurisdiction})"
        + (f", part `{part.name}` of a joint exercise." if exercise.joint else "."),
        "",
        "## The situation",
        "",
    ]
    if exercise.typology == TypologyKind.RANSOMWARE.value:
        lines.append(
            "Victims of a ransomware campaign paid ransoms in bitcoin. Find where the money went, "
            "which exchanges received it, and ask them to freeze it before they pay it out."
        )
    else:
        lines.append(
            "A hacker drained an exchange's hot wallet. Find where the money went, which exchanges "
            "received it, and ask them to freeze it before they pay it out."
        )
    lines += [
        "",
        f"The exchanges pay deposited funds out on {deadline} ({exercise.payout_days} days after "
        "this hand-out): a freeze must take effect by then.",
        "",
    ]
    if part.briefed:
        lines += [
            "## Victims' reports",
            "",
            "| address | transaction | amount (base units) |",
            "|---|---|---|",
        ]
        lines += [f"| {b['address']} | {b['txid']} | {b['value']} |" for b in exercise.briefing]
        lines.append("")
    else:
        lines += [
            "## Your part",
            "",
            "The victims reported to your partner agency, which holds the earlier "
            "chain data. You hold the later blocks. Cooperate: ask for their leads, share what you "
            "hold (requests, PSI, signed packages).",
            "",
        ]
    if exercise.joint:
        others = [p for p in exercise.parts if p is not part]
        lines += (
            ["## Partners", ""] + [f"- {p.agency} ({p.jurisdiction}), part `{p.name}`" for p in others] + [""]
        )
    lines += [
        "## The data",
        "",
        f"- `chain/{TRANSACTIONS}`: {exercise.chain} transactions (bitcoin-etl JSON lines), blocks "
        f"{part.heights[0]} to {part.heights[1]}",
        "- `tagpacks/`: public attribution tags (GraphSense TagPacks and an ActorPack)",
        "",
        "```",
        f"fundtrail ingest bitcoin-etl chain/{TRANSACTIONS} --chain {exercise.chain}",
        "fundtrail tags import tagpacks/*.yaml",
        f"fundtrail cluster --chain {exercise.chain}",
        f"fundtrail trace ADDRESS... --chain {exercise.chain} --format json > trace.json",
        "```",
        "",
        "## Your answer",
        "",
        "Give your trainer one of: the trace JSON; a CSV `address,value,exchange,jurisdiction` of the "
        "exchange deposit addresses with the amounts (base units) you traced there; or your drafted "
        "freeze request(s) (`fundtrail request show NUMBER --format json`). Scored: the share of the "
        "cashed-out value you found (recall) and how much of what you claim is right (precision), the "
        "exchanges and jurisdictions, your time, and which freezes would have taken effect in time.",
        "",
    ]
    return "\n".join(lines)


def hand_out(
    home: Path, exercise_id: str, out: Path, *, part: str | None = None, now: datetime | None = None
) -> list[HandOut]:
    """Write the hand-out of one part (or of every part, in ``out/part-NAME``) and note its time."""
    exercise = load_exercise(home, exercise_id)
    folder = _folder(home, exercise_id)
    chosen = exercise.part(part)
    parts = [chosen] if chosen is not None else list(exercise.parts)
    now = now or datetime.now(UTC)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: exists and is not an empty folder")
    written = []
    handouts = dict(exercise.handouts)
    for p in parts:
        target = out / f"part-{p.name}" if len(parts) > 1 else out
        if exercise.typology == CROSS_CHAIN:
            shutil.copytree(folder / "data" / STORE_DIR, target / STORE_DIR)
        else:
            (target / "chain").mkdir(parents=True, exist_ok=True)
            _copy_heights(
                folder / "data" / "chain" / TRANSACTIONS, target / "chain" / TRANSACTIONS, p.heights
            )
        shutil.copytree(folder / "data" / TAGPACK_DIR, target / TAGPACK_DIR)
        handed_at = handouts.setdefault(p.name, now)
        (target / "README.md").write_text(_readme(exercise, p, handed_at), encoding="utf-8")
        files = {str(f.relative_to(target)): sha256_file(f) for f in sorted(target.rglob("*")) if f.is_file()}
        doc = {
            "format": HANDOUT_FORMAT,
            "exercise": exercise.id,
            "typology": exercise.typology,
            "difficulty": exercise.difficulty,
            "chain": exercise.chain,
            "part": p.name,
            "agency": {"name": p.agency, "jurisdiction": p.jurisdiction},
            "partners": [
                {"name": o.agency, "jurisdiction": o.jurisdiction, "part": o.name}
                for o in exercise.parts
                if o is not p
            ],
            "heights": list(p.heights),
            "briefing": list(exercise.briefing) if p.briefed else [],
            "handed_out_at": handed_at.isoformat(),
            "payout_days": exercise.payout_days,
            "files": files,
        }
        (target / "handout.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        written.append(HandOut(exercise.id, p.name, p.agency, target, files))
    _save(home, dataclasses.replace(exercise, handouts=handouts))
    return written


# ------------------------------------------------------------------------------------------ submit


@dataclass(frozen=True)
class Submission:
    """A team's stored answer."""

    exercise: str
    number: int
    team: str
    part: str
    kind: str
    submitted_at: datetime
    sha256: str
    source: str
    findings: tuple[Finding, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "format": SUBMISSION_FORMAT,
            "exercise": self.exercise,
            "number": self.number,
            "team": self.team,
            "part": self.part,
            "kind": self.kind,
            "submitted_at": self.submitted_at.isoformat(),
            "sha256": self.sha256,
            "source": self.source,
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Submission:
        """Read the JSON form."""
        return cls(
            doc["exercise"],
            int(doc["number"]),
            doc["team"],
            doc["part"],
            doc["kind"],
            datetime.fromisoformat(doc["submitted_at"]),
            doc["sha256"],
            doc["source"],
            tuple(Finding.from_dict(f) for f in doc["findings"]),
        )


def submit_answer(
    home: Path,
    exercise_id: str,
    team: str,
    answer_path: Path,
    *,
    part: str | None = None,
    now: datetime | None = None,
) -> Submission:
    """Check a team's answer and store it (the file as given, and its findings)."""
    exercise = load_exercise(home, exercise_id)
    team = team.strip()
    if not _TEAM.match(team):
        raise InputError(f"team name {team!r}: 1-64 letters, digits, spaces, '.', '_' or '-'")
    chosen = exercise.part(part)
    answer: Answer = parse_answer(Path(answer_path))
    folder = _folder(home, exercise_id) / "submissions"
    folder.mkdir(exist_ok=True)
    number = 1 + max((int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit()), default=0)
    raw = Path(answer_path).read_bytes()
    submission = Submission(
        exercise.id,
        number,
        team,
        chosen.name if chosen else WHOLE,
        answer.kind.value,
        now or datetime.now(UTC),
        hashlib.sha256(raw).hexdigest(),
        Path(answer_path).name,
        answer.findings,
    )
    (folder / f"{number:03d}.answer").write_bytes(raw)
    _write_atomic(
        folder / f"{number:03d}.json", orjson.dumps(submission.to_dict(), option=orjson.OPT_INDENT_2)
    )
    return submission


def list_submissions(home: Path, exercise_id: str) -> list[Submission]:
    """The stored submissions of an exercise, in the order they came."""
    folder = _folder(home, exercise_id) / "submissions"
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        doc = _read_json(path)
        try:
            out.append(Submission.from_dict(doc))
        except (KeyError, TypeError, ValueError) as exc:
            raise ParseError(str(path), None, f"not a stored submission ({exc})") from None
    return out


# ------------------------------------------------------------------------------------------ score


@dataclass(frozen=True, slots=True)
class Ratio:
    """A share with its numerator and denominator (0 when the denominator is 0)."""

    hit: int
    total: int

    @property
    def value(self) -> float:
        """hit / total, 0.0 for an empty total."""
        return self.hit / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (integers as strings: they may be base units)."""
        return {"value": round(self.value, 6), "hit": str(self.hit), "total": str(self.total)}


@dataclass(frozen=True, slots=True)
class RequestTiming:
    """Whether a freeze at one exchange, sent when the answer came, would have held the funds."""

    exchange: str
    jurisdiction: str | None
    instrument: str
    sent: date
    effective: date
    payout: date
    value: int

    @property
    def in_time(self) -> bool:
        """The freeze takes effect no later than the payout."""
        return self.effective <= self.payout

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "exchange": self.exchange,
            "jurisdiction": self.jurisdiction,
            "instrument": self.instrument,
            "sent": self.sent.isoformat(),
            "effective": self.effective.isoformat(),
            "payout": self.payout.isoformat(),
            "value": str(self.value),
            "in_time": self.in_time,
        }


WEIGHTS = {
    "recall_value": 0.4,
    "precision_value": 0.2,
    "exchanges": 0.15,
    "jurisdictions": 0.1,
    "in_time": 0.15,
}
"""How the points (0-100) of a submission are made from its scores."""


@dataclass(frozen=True)
class Score:
    """The scores of one submission against the sealed truth."""

    submission: Submission
    recall_value: Ratio
    precision_value: Ratio
    recall_count: Ratio
    precision_count: Ratio
    exchanges: Ratio
    exchange_precision: Ratio
    jurisdictions: Ratio
    requests: tuple[RequestTiming, ...]
    in_time: Ratio
    time_taken: timedelta | None
    by_asset: tuple[AssetScore, ...] = ()
    """Recall and precision by value per chain and asset (cross-chain exercises have several)."""

    @property
    def points(self) -> float:
        """0-100: the weighted sum of the main scores (:data:`WEIGHTS`)."""
        parts = {
            "recall_value": self.recall_value,
            "precision_value": self.precision_value,
            "exchanges": self.exchanges,
            "jurisdictions": self.jurisdictions,
            "in_time": self.in_time,
        }
        return round(100 * sum(WEIGHTS[k] * r.value for k, r in parts.items()), 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        s = self.submission
        return {
            "exercise": s.exercise,
            "submission": s.number,
            "team": s.team,
            "part": s.part,
            "kind": s.kind,
            "submitted_at": s.submitted_at.isoformat(),
            "time_taken_seconds": None if self.time_taken is None else int(self.time_taken.total_seconds()),
            "cash_out": {
                "recall_value": self.recall_value.to_dict(),
                "precision_value": self.precision_value.to_dict(),
                "recall_count": self.recall_count.to_dict(),
                "precision_count": self.precision_count.to_dict(),
                "by_asset": [a.to_dict() for a in self.by_asset],
            },
            "exchanges": {"recall": self.exchanges.to_dict(), "precision": self.exchange_precision.to_dict()},
            "jurisdictions": {"recall": self.jurisdictions.to_dict()},
            "requests": {
                "in_time_value": self.in_time.to_dict(),
                "in_time": sum(r.in_time for r in self.requests),
                "late": sum(not r.in_time for r in self.requests),
                "items": [r.to_dict() for r in self.requests],
            },
            "points": self.points,
        }


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().casefold() == b.strip().casefold()


def _deadline_book(home: Path) -> Any:
    from fundtrail.cases.requests import deadline_book

    return deadline_book(home)


@dataclass(frozen=True, slots=True)
class TrueDeposit:
    """A true cash-out as scored: value of one asset at one exchange deposit address of one chain.

    ``asset`` is None for the Bitcoin-like typologies (one asset: any finding's asset matches).
    """

    chain: str
    address: str
    asset: str | None
    exchange_name: str
    jurisdiction: str | None
    value: int

    @property
    def group(self) -> tuple[str, str | None]:
        """The chain and asset its value is counted in."""
        return (self.chain, self.asset)


@dataclass(frozen=True, slots=True)
class AssetScore:
    """Cash-out recall and precision by value in one asset of one chain."""

    chain: str
    asset: str | None
    recall_value: Ratio
    precision_value: Ratio
    in_time: Ratio

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "chain": self.chain,
            "asset": self.asset,
            "recall_value": self.recall_value.to_dict(),
            "precision_value": self.precision_value.to_dict(),
            "in_time_value": self.in_time.to_dict(),
        }


SCALE = 1_000_000
"""Ratios averaged over several assets are kept in millionths."""


def _mean(ratios: list[Ratio]) -> Ratio:
    """One ratio as is; several (values of different assets) averaged, in millionths."""
    if len(ratios) == 1:
        return ratios[0]
    return Ratio(sum(round(r.value * SCALE) for r in ratios), SCALE * len(ratios))


def true_deposits(truth: dict[str, Any]) -> list[TrueDeposit]:
    """The true cash-outs of an opened truth, per chain, deposit address and asset."""
    if truth.get("typology") == CROSS_CHAIN:
        sums: dict[tuple[str, str, str], TrueDeposit] = {}
        for case in truth["cases"]:
            for o in case["cash_outs"]:
                key = (o["chain"], o["address"].lower(), o["asset"].lower())
                prev = sums.get(key)
                value = int(o["value"]) + (prev.value if prev else 0)
                sums[key] = TrueDeposit(*key, o["exchange"], o.get("jurisdiction"), value)
        return list(sums.values())
    return [
        TrueDeposit(truth["chain"], a, None, c.exchange_name, c.jurisdiction, c.value)
        for a, c in true_cash_outs(truth).items()
    ]


def score_submission(
    submission: Submission,
    exercise: Exercise,
    cash_outs: dict[str, CashOut] | list[TrueDeposit],
    book: Any,
) -> Score:
    """Score one submission against the true cash-outs (summed per chain, deposit address and asset).

    Value is compared within one chain and asset: recall and precision by value are computed per asset
    and averaged over the assets (a single-asset exercise keeps the plain ratios).
    """
    from fundtrail.domain.deadlines import add_days
    from fundtrail.domain.requests import RequestType

    deposits = (
        [
            TrueDeposit(exercise.chain, a, None, c.exchange_name, c.jurisdiction, c.value)
            for a, c in cash_outs.items()
        ]
        if isinstance(cash_outs, dict)
        else list(cash_outs)
    )
    by_address: dict[str, list[TrueDeposit]] = {}
    for d in deposits:
        by_address.setdefault(d.address, []).append(d)
    groups = sorted({d.group for d in deposits}, key=str)

    def match(f: Finding) -> TrueDeposit | None:
        for d in by_address.get(f.address, []):
            if (f.chain is None or f.chain == d.chain) and (
                f.asset is None or d.asset is None or f.asset == d.asset
            ):
                return d
        return None

    Key = tuple[str | None, str, str | None]
    claimed: dict[Key, int | None] = {}
    named: dict[Key, tuple[str | None, str | None]] = {}
    truth_of: dict[Key, TrueDeposit] = {}
    for f in submission.findings:
        hit = match(f)
        key: Key = (hit.chain, hit.address, hit.asset) if hit else (f.chain, f.address, f.asset)
        if hit:
            truth_of[key] = hit
        prev = claimed.get(key, 0)
        claimed[key] = None if f.value is None or prev is None else prev + f.value
        if f.exchange or f.jurisdiction or key not in named:
            named[key] = (f.exchange, f.jurisdiction)
    true_by: dict[tuple[str | None, str | None], int] = {g: 0 for g in groups}
    for d in deposits:
        true_by[d.group] += d.value
    found_by: dict[tuple[str | None, str | None], int] = {g: 0 for g in groups}
    claimed_by: dict[tuple[str | None, str | None], int] = {g: 0 for g in groups}
    credit: dict[Key, int] = {}
    for key, value in claimed.items():
        truth = truth_of.get(key)
        if truth is None:
            group = groups[0] if len(groups) == 1 else (key[0], key[2])
            claimed_by[group] = claimed_by.get(group, 0) + (value or 0)
            continue
        got = truth.value if value is None else min(value, truth.value)
        credit[key] = got
        found_by[truth.group] += got
        claimed_by[truth.group] += truth.value if value is None else value
    true_exchanges = {d.exchange_name for d in deposits}
    right = {truth_of[k].exchange_name for k in credit if _same(named[k][0], truth_of[k].exchange_name)}
    any_named = {n.casefold() for n, _ in named.values() if n}
    true_jur = {d.jurisdiction for d in deposits if d.jurisdiction}
    right_jur = {
        truth_of[k].jurisdiction
        for k in credit
        if truth_of[k].jurisdiction and _same(named[k][1], truth_of[k].jurisdiction)
    }
    part = exercise.part(submission.part) or exercise.owner
    started = (
        exercise.handouts.get(part.name)
        if submission.part != WHOLE
        else min(exercise.handouts.values(), default=None)
    )
    clock_start = started or exercise.created_at
    payout = (clock_start + timedelta(days=exercise.payout_days)).date()
    timings = []
    in_time_by: dict[tuple[str | None, str | None], int] = {g: 0 for g in groups}
    for name in sorted(right):
        keys = [k for k in credit if truth_of[k].exchange_name == name and _same(named[k][0], name)]
        jur = truth_of[keys[0]].jurisdiction
        abroad = bool(jur and jur != part.jurisdiction)
        rule = book.rule_for(RequestType.FREEZE, abroad=abroad)
        sent = submission.submitted_at.date()
        effective = add_days(sent, rule.answer_days or 0, business=rule.business_days, holidays=book.holidays)
        timing = RequestTiming(name, jur, rule.key, sent, effective, payout, sum(credit[k] for k in keys))
        timings.append(timing)
        if timing.in_time:
            for k in keys:
                in_time_by[truth_of[k].group] += credit[k]
    by_asset = tuple(
        AssetScore(
            str(g[0]),
            g[1],
            Ratio(found_by.get(g, 0), true_by.get(g, 0)),
            Ratio(found_by.get(g, 0), claimed_by.get(g, 0)),
            Ratio(in_time_by.get(g, 0), true_by.get(g, 0)),
        )
        for g in sorted(set(true_by) | {g for g, v in claimed_by.items() if v}, key=str)
    )
    truly = [a for a in by_asset if a.recall_value.total]
    claimed_assets = [a for a in by_asset if a.precision_value.total]
    return Score(
        submission,
        _mean([a.recall_value for a in truly]) if truly else Ratio(0, 0),
        _mean([a.precision_value for a in claimed_assets]) if claimed_assets else Ratio(0, 0),
        Ratio(len(credit), len(deposits)),
        Ratio(len(credit), len(claimed)),
        Ratio(len(right), len(true_exchanges)),
        Ratio(len(right), len(any_named)),
        Ratio(len(right_jur), len(true_jur)),
        tuple(timings),
        _mean([a.in_time for a in truly]) if truly else Ratio(0, 0),
        submission.submitted_at - started if started else None,
        by_asset,
    )


def open_truth(home: Path, exercise_id: str, key_file: Path | None = None) -> dict[str, Any]:
    """The sealed truth of an exercise, opened with the owner's key."""
    folder = _folder(home, exercise_id)
    owner = load_owner_key(home, key_file)
    return unseal(folder / "truth.sealed", owner, exercise_id)


def true_cash_outs(truth: dict[str, Any]) -> dict[str, CashOut]:
    """The cash-outs of the exercise's typologies, summed per deposit address."""
    out: dict[str, CashOut] = {}
    for doc in truth["typologies"]:
        out.update(Typology.from_dict(doc).cash_out_by_address())
    return out


def score_exercise(home: Path, exercise_id: str, *, key_file: Path | None = None) -> list[Score]:
    """Unseal the truth and score every submission of the exercise."""
    exercise = load_exercise(home, exercise_id)
    cash_outs = true_deposits(open_truth(home, exercise_id, key_file))
    book = _deadline_book(home)
    return [score_submission(s, exercise, cash_outs, book) for s in list_submissions(home, exercise_id)]


@dataclass(frozen=True)
class BoardRow:
    """A team's best submission on an exercise."""

    exercise: str
    team: str
    submissions: int
    best: Score

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "exercise": self.exercise,
            "team": self.team,
            "submissions": self.submissions,
            "best": self.best.to_dict(),
        }


def board(home: Path, exercise_id: str | None = None, *, key_file: Path | None = None) -> list[BoardRow]:
    """Per exercise and team (and part), the best submission by points, best first."""
    ids = [exercise_id] if exercise_id else [e.id for e in list_exercises(home)]
    rows = []
    for ex in ids:
        by_team: dict[tuple[str, str], list[Score]] = {}
        for s in score_exercise(home, ex, key_file=key_file):
            by_team.setdefault((s.submission.team, s.submission.part), []).append(s)
        for (team, _part), scores in by_team.items():
            best = max(scores, key=lambda s: (s.points, -s.submission.number))
            rows.append(BoardRow(ex, team, len(scores), best))
    rows.sort(key=lambda r: (r.exercise, -r.best.points, r.team))
    return rows


def write_board_chart(rows: list[BoardRow], out: Path) -> list[Path]:
    """A bar chart of the board (points, recall and precision by value per team) as PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    labels = [f"{r.team} ({r.best.submission.part})\n{r.exercise}" for r in rows] or ["no submissions yet"]
    series = {
        "points / 100": [r.best.points / 100 for r in rows],
        "recall (value)": [r.best.recall_value.value for r in rows],
        "precision (value)": [r.best.precision_value.value for r in rows],
        "freezes in time (value)": [r.best.in_time.value for r in rows],
    }
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(labels) + 2), 4))
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(rows))]
        ax.bar(xs, values, width, label=name)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title("Exercise board")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    paths = [out / "board.png", out / "board.svg"]
    fig.savefig(paths[0], dpi=120)
    fig.savefig(paths[1], metadata={"Date": None})
    plt.close(fig)
    return paths
