"""Ground truth of a generated world: who owns each address, which transactions are CoinJoins, peel
chains, and for each crime typology its seeds, laundering path and cash-outs.

Files (in ``groundtruth/`` of a world folder):

* ``truth.json``: entities (id, name, kind, jurisdiction, actor), CoinJoin txids by kind, peel chains and
  typologies. Amounts are strings of base units, as everywhere in FundTrail's JSON.
* ``addresses.jsonl`` (``.gz`` when compressed): one line per generated address,
  ``{"address", "entity", "kind", "role"}``, written while the world is generated (bounded memory).

:func:`load_truth` reads ``truth.json``; :func:`read_address_owners` streams the address lines.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from fundtrail.errors import InputError, ParseError

TRUTH_FORMAT = "fundtrail-groundtruth/1"


class EntityKind(StrEnum):
    """What kind of actor an entity of the world is."""

    USER = "user"
    MERCHANT = "merchant"
    MINER = "miner"
    EXCHANGE = "exchange"
    PAYMENT_PROCESSOR = "payment_processor"
    GAMBLING = "gambling"
    MARKET = "market"
    COINJOIN_COORDINATOR = "coinjoin_coordinator"
    RANSOMWARE = "ransomware"
    THIEF = "thief"


class AddressRole(StrEnum):
    """What an address is used for by its owner."""

    COINBASE = "coinbase"
    RECEIVE = "receive"
    CHANGE = "change"
    DEPOSIT = "deposit"
    HOT = "hot"
    COLD = "cold"
    INVOICE = "invoice"
    COORDINATOR = "coordinator"
    MIXED = "mixed"
    PREMIX = "premix"
    POSTMIX = "postmix"
    RANSOM = "ransom"
    LAUNDER = "launder"


class CoinJoinKind(StrEnum):
    """The mixing transactions the generator makes."""

    WASABI = "wasabi"
    WHIRLPOOL_MIX = "whirlpool_mix"
    WHIRLPOOL_TX0 = "whirlpool_tx0"


class TypologyKind(StrEnum):
    """Crime typologies the generator plays out."""

    RANSOMWARE = "ransomware"
    THEFT = "theft"


@dataclass(frozen=True, slots=True)
class Entity:
    """An actor of the world. ``actor`` is its id in the world's ActorPack (services only)."""

    id: str
    name: str
    kind: EntityKind
    jurisdiction: str | None = None
    actor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind.value,
            "jurisdiction": self.jurisdiction,
            "actor": self.actor,
        }


@dataclass(frozen=True, slots=True)
class CashOut:
    """Laundered value deposited at an exchange: the deposit address, the exchange and the amount."""

    address: str
    exchange: str
    exchange_name: str
    jurisdiction: str | None
    value: int
    txid: str
    height: int
    route: str
    """How the value got there: ``peel``, ``direct``, ``wasabi``, ``wasabi-change``, ``whirlpool``,
    ``tx0-change`` ..."""

    @property
    def is_mixed(self) -> bool:
        """True when the value passed through a CoinJoin on its way (a trace cannot see through it)."""
        return self.route in ("wasabi", "wasabi-change", "whirlpool")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "address": self.address,
            "exchange": self.exchange,
            "exchange_name": self.exchange_name,
            "jurisdiction": self.jurisdiction,
            "value": str(self.value),
            "txid": self.txid,
            "height": self.height,
            "route": self.route,
            "mixed": self.is_mixed,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CashOut:
        """Read the JSON form."""
        return cls(
            doc["address"],
            doc["exchange"],
            doc["exchange_name"],
            doc.get("jurisdiction"),
            int(doc["value"]),
            doc["txid"],
            int(doc["height"]),
            doc["route"],
        )


@dataclass(frozen=True, slots=True)
class PathStep:
    """One transaction of a laundering path."""

    txid: str
    step: str
    height: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"txid": self.txid, "step": self.step, "height": self.height}


@dataclass(frozen=True, slots=True)
class Victim:
    """A payment by a victim (ransom) or a loss (theft): who, to which address, in which tx, how much."""

    entity: str
    address: str
    txid: str
    value: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"entity": self.entity, "address": self.address, "txid": self.txid, "value": str(self.value)}


@dataclass(frozen=True)
class Typology:
    """One played-out crime: seeds an investigator starts from, the path the funds took, the cash-outs."""

    id: str
    kind: TypologyKind
    actor: str
    label: str
    seed_addresses: tuple[str, ...]
    seed_txids: tuple[str, ...]
    victims: tuple[Victim, ...]
    path: tuple[PathStep, ...]
    cash_outs: tuple[CashOut, ...]
    held: tuple[tuple[str, int], ...] = ()
    complete: bool = True

    @property
    def proceeds(self) -> int:
        """Value the victims paid or lost."""
        return sum(v.value for v in self.victims)

    @property
    def cashed_out(self) -> int:
        """Value deposited at exchanges."""
        return sum(c.value for c in self.cash_outs)

    def cash_out_by_address(self) -> dict[str, CashOut]:
        """Cash-outs summed per deposit address (an address can receive several deposits)."""
        out: dict[str, CashOut] = {}
        for c in self.cash_outs:
            prev = out.get(c.address)
            out[c.address] = (
                c
                if prev is None
                else CashOut(
                    c.address,
                    c.exchange,
                    c.exchange_name,
                    c.jurisdiction,
                    prev.value + c.value,
                    prev.txid,
                    prev.height,
                    prev.route if prev.route == c.route else f"{prev.route}+{c.route}",
                )
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "actor": self.actor,
            "label": self.label,
            "complete": self.complete,
            "seeds": {"addresses": list(self.seed_addresses), "txids": list(self.seed_txids)},
            "proceeds": str(self.proceeds),
            "cashed_out": str(self.cashed_out),
            "victims": [v.to_dict() for v in self.victims],
            "path": [p.to_dict() for p in self.path],
            "cash_outs": [c.to_dict() for c in self.cash_outs],
            "held": [{"address": a, "value": str(v)} for a, v in self.held],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Typology:
        """Read the JSON form."""
        return cls(
            id=doc["id"],
            kind=TypologyKind(doc["kind"]),
            actor=doc["actor"],
            label=doc["label"],
            seed_addresses=tuple(doc["seeds"]["addresses"]),
            seed_txids=tuple(doc["seeds"]["txids"]),
            victims=tuple(
                Victim(v["entity"], v["address"], v["txid"], int(v["value"])) for v in doc["victims"]
            ),
            path=tuple(PathStep(p["txid"], p["step"], int(p["height"])) for p in doc["path"]),
            cash_outs=tuple(CashOut.from_dict(c) for c in doc["cash_outs"]),
            held=tuple((h["address"], int(h["value"])) for h in doc.get("held", ())),
            complete=bool(doc.get("complete", True)),
        )


@dataclass(frozen=True, slots=True)
class PeelChain:
    """A peel chain the generator made on purpose: who made it, why, its transactions in order."""

    entity: str
    purpose: str
    txids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"entity": self.entity, "purpose": self.purpose, "txids": list(self.txids)}


@dataclass(frozen=True)
class GroundTruth:
    """Everything ``truth.json`` says about a world (the address owners are streamed separately)."""

    seed: int
    size: str
    chain: str
    entities: tuple[Entity, ...]
    coinjoins: dict[CoinJoinKind, tuple[str, ...]]
    peel_chains: tuple[PeelChain, ...]
    typologies: tuple[Typology, ...]
    payjoins: tuple[str, ...] = ()
    """PayJoins (BIP78): their inputs have two owners, and nothing on chain shows it."""
    transactions: int = 0
    blocks: int = 0
    heights: tuple[int, int] = (0, 0)
    addresses_file: str = "addresses.jsonl"
    extra: dict[str, Any] = field(default_factory=dict)

    def entity(self, entity_id: str) -> Entity:
        """The entity with this id."""
        for e in self.entities:
            if e.id == entity_id:
                return e
        raise KeyError(entity_id)

    def typologies_of(self, kind: TypologyKind) -> list[Typology]:
        """The typologies of one kind."""
        return [t for t in self.typologies if t.kind is kind]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``truth.json``)."""
        return {
            "format": TRUTH_FORMAT,
            "seed": self.seed,
            "size": self.size,
            "chain": self.chain,
            "transactions": self.transactions,
            "blocks": self.blocks,
            "heights": list(self.heights),
            "addresses_file": self.addresses_file,
            "entities": [e.to_dict() for e in self.entities],
            "coinjoins": {k.value: list(v) for k, v in self.coinjoins.items()},
            "peel_chains": [p.to_dict() for p in self.peel_chains],
            "payjoins": list(self.payjoins),
            "typologies": [t.to_dict() for t in self.typologies],
            **self.extra,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> GroundTruth:
        """Read the JSON form."""
        known = {
            "format",
            "seed",
            "size",
            "chain",
            "transactions",
            "blocks",
            "heights",
            "addresses_file",
            "entities",
            "coinjoins",
            "peel_chains",
            "payjoins",
            "typologies",
        }
        return cls(
            seed=int(doc["seed"]),
            size=str(doc["size"]),
            chain=doc["chain"],
            entities=tuple(
                Entity(e["id"], e["name"], EntityKind(e["kind"]), e.get("jurisdiction"), e.get("actor"))
                for e in doc["entities"]
            ),
            coinjoins={CoinJoinKind(k): tuple(v) for k, v in doc["coinjoins"].items()},
            peel_chains=tuple(
                PeelChain(p["entity"], p["purpose"], tuple(p["txids"])) for p in doc["peel_chains"]
            ),
            typologies=tuple(Typology.from_dict(t) for t in doc["typologies"]),
            payjoins=tuple(doc.get("payjoins", ())),
            transactions=int(doc.get("transactions", 0)),
            blocks=int(doc.get("blocks", 0)),
            heights=(int(doc.get("heights", (0, 0))[0]), int(doc.get("heights", (0, 0))[1])),
            addresses_file=doc.get("addresses_file", "addresses.jsonl"),
            extra={k: v for k, v in doc.items() if k not in known},
        )


TRUTH_DIR = "groundtruth"
TRUTH_FILE = "truth.json"


def truth_path(world_dir: Path) -> Path:
    """Where ``truth.json`` of a world folder is."""
    return Path(world_dir) / TRUTH_DIR / TRUTH_FILE


def load_truth(world_dir: Path) -> GroundTruth:
    """Read the ground truth of a generated world folder."""
    path = truth_path(world_dir)
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InputError(f"{world_dir}: not a generated world (no {TRUTH_DIR}/{TRUTH_FILE})") from None
    except orjson.JSONDecodeError as exc:
        raise ParseError(str(path), None, f"not JSON: {exc}") from None
    if doc.get("format") != TRUTH_FORMAT:
        raise ParseError(str(path), None, f"format {doc.get('format')!r} is not {TRUTH_FORMAT}")
    return GroundTruth.from_dict(doc)


def read_address_owners(
    world_dir: Path, truth: GroundTruth | None = None
) -> Iterator[tuple[str, str, str, str]]:
    """(address, entity id, entity kind, role) of every generated address, in generation order."""
    truth = truth or load_truth(world_dir)
    path = Path(world_dir) / TRUTH_DIR / truth.addresses_file
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        for line in fh:
            row = orjson.loads(line)
            yield row["address"], row["entity"], row["kind"], row["role"]
