"""Files of a generated world, in the ecosystem's formats, written deterministically.

::

    WORLD/
      transactions.json[.gz]          bitcoin-etl transaction rows, one JSON object a line, block by block
      tagpacks/actors.actorpack.yaml  the services as ActorPack actors (label, category, jurisdiction)
      tagpacks/exchanges.yaml         TagPacks attributing hot and cold wallets and a few deposit addresses,
      tagpacks/services.yaml          pools, the payment processor, the casino and the market,
      tagpacks/mixers.yaml            the CoinJoin coordinators' fee addresses,
      tagpacks/reports.yaml           and addresses reported by victims (abuse tags)
      groundtruth/truth.json          see :mod:`fundtrail.scenarios.groundtruth`
      groundtruth/addresses.jsonl[.gz]
      world.json                      manifest: seed, size, counts, and the SHA-256 of every file

Transactions and address owners are streamed while the world is generated. Gzip files carry no name and
no time stamp, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import yaml

from fundtrail.scenarios.groundtruth import AddressRole, Entity, GroundTruth
from fundtrail.scenarios.keys import Key

WORLD_FORMAT = "fundtrail-world/1"
TRANSACTIONS = "transactions.json"
TAGPACK_DIR = "tagpacks"
ACTORPACK = "actors.actorpack.yaml"
MANIFEST = "world.json"
CREATOR = "FundTrail scenario generator"


def open_output(path: Path, compress: bool) -> IO[bytes]:
    """A binary file for writing; gzip without name or time stamp when ``compress``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.open("wb")
    if not compress:
        return raw
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0)  # type: ignore[return-value]


class JsonLinesWriter:
    """Writes rows as JSON lines (orjson, keys in insertion order)."""

    def __init__(self, path: Path, compress: bool = False) -> None:
        self.path = path
        self._raw: IO[bytes] | None = None
        self.handle = open_output(path, compress)
        if compress:
            self._raw = self.handle.fileobj  # type: ignore[attr-defined]
        self.rows = 0

    def write_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append rows."""
        dumps = orjson.dumps
        chunk = [dumps(r) for r in rows]
        self.rows += len(chunk)
        if chunk:
            self.handle.write(b"\n".join(chunk) + b"\n")

    def close(self) -> None:
        """Flush and close."""
        self.handle.close()
        if self._raw is not None:
            self._raw.close()


class AddressOwners:
    """Streams ``{"address", "entity", "kind", "role"}`` lines: the owner of every generated address."""

    def __init__(self, path: Path, compress: bool = False) -> None:
        self.out = JsonLinesWriter(path, compress)
        self._buffer: list[dict[str, Any]] = []

    def __call__(self, key: Key, owner: Entity, role: AddressRole) -> None:
        self._buffer.append(
            {"address": key.address, "entity": owner.id, "kind": owner.kind.value, "role": role.value}
        )
        if len(self._buffer) >= 4096:
            self.flush()

    def flush(self) -> None:
        """Write buffered lines."""
        self.out.write_rows(self._buffer)
        self._buffer = []

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        self.out.close()


# ------------------------------------------------------------------------------------------ TagPacks


@dataclass(frozen=True, slots=True)
class TagSpec:
    """One tag to write: an address and the fields it overrides in its pack's header."""

    address: str
    label: str
    actor: str | None = None
    category: str | None = None
    abuse: str | None = None
    confidence: str | None = None
    is_cluster_definer: bool | None = None

    def to_yaml(self) -> dict[str, Any]:
        """The tag as a YAML mapping (only the fields it sets)."""
        doc: dict[str, Any] = {"address": self.address, "label": self.label}
        for name in ("actor", "category", "abuse", "confidence", "is_cluster_definer"):
            value = getattr(self, name)
            if value is not None:
                doc[name] = value
        return doc


@dataclass(frozen=True, slots=True)
class ActorSpec:
    """One actor of the world's ActorPack."""

    id: str
    label: str
    category: str
    jurisdiction: str | None

    def to_yaml(self, lastmod: date) -> dict[str, Any]:
        """The actor as a YAML mapping."""
        return {
            "id": self.id,
            "uri": f"https://{self.id.replace('_', '-')}.example",
            "label": self.label,
            "lastmod": lastmod,
            "categories": [self.category],
            "jurisdictions": [self.jurisdiction] if self.jurisdiction else [],
        }


def _dump_yaml(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")


def write_tagpack(
    path: Path,
    *,
    title: str,
    description: str,
    currency: str,
    confidence: str,
    lastmod: date,
    source: str,
    tags: Sequence[TagSpec],
    category: str | None = None,
    is_cluster_definer: bool | None = None,
) -> None:
    """Write one TagPack (header fields are inherited by every tag that does not set them)."""
    header: dict[str, Any] = {
        "title": title,
        "creator": CREATOR,
        "description": description,
        "currency": currency,
        "confidence": confidence,
        "lastmod": lastmod,
        "source": source,
    }
    if category:
        header["category"] = category
    if is_cluster_definer is not None:
        header["is_cluster_definer"] = is_cluster_definer
    header["tags"] = [t.to_yaml() for t in tags]
    _dump_yaml(path, header)


def write_actorpack(path: Path, actors: Sequence[ActorSpec], *, lastmod: date, seed: int) -> None:
    """Write the world's ActorPack."""
    _dump_yaml(
        path,
        {
            "title": f"Actors of the generated world (seed {seed})",
            "creator": CREATOR,
            "description": "Fictional services of a generated world, with their jurisdictions.",
            "lastmod": lastmod,
            "actors": [a.to_yaml(lastmod) for a in actors],
        },
    )


def world_date(timestamp: int) -> date:
    """The UTC date of a block time."""
    return datetime.fromtimestamp(timestamp, UTC).date()


# ------------------------------------------------------------------------------------------ truth, manifest


def write_truth(path: Path, truth: GroundTruth) -> None:
    """Write ``truth.json`` (indented, keys in a fixed order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(truth.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(out_dir: Path, document: dict[str, Any], files: Sequence[Path]) -> Path:
    """Write ``world.json``: the document plus size and SHA-256 of each file (paths relative to the world)."""
    listed = {
        p.relative_to(out_dir).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(files)
    }
    path = out_dir / MANIFEST
    path.write_bytes(
        orjson.dumps({"format": WORLD_FORMAT, **document, "files": listed}, option=orjson.OPT_INDENT_2)
        + b"\n"
    )
    return path
