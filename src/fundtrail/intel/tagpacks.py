"""GraphSense TagPacks and ActorPacks: validation, import into the chain store, and export.

A TagPack is YAML: a header (``title``, ``creator``, ``description``, ``currency``/``network``,
``confidence``, ``category``, ``lastmod`` ...) and a ``tags`` list. Every tag inherits each header field
it does not set (the pack-only fields ``title``, ``creator``, ``description``, ``owner`` and
``is_public`` excepted). ``category``, ``abuse`` and ``concepts`` take ids of the concepts taxonomy,
``confidence`` an id of the confidence taxonomy; the taxonomy files ship in ``intel/taxonomy/``.

Invariants:

* Import is one transaction per pack and idempotent: the rows of a pack are keyed by its URI (the
  resolved file path unless given), and re-importing the pack replaces them.
* The original header (table ``tagpacks``) and each tag's own fields (``tags.extra``) are kept, so
  :func:`export_tagpacks` writes packs whose re-import yields the same fully-resolved tags.
* Addresses are canonical per chain (EVM lower case). An address that is invalid for its chain is
  kept as written, reported, and marked in ``extra.invalid_address``; tags of chains FundTrail does
  not know are kept under the lower-case network code.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import logging
import lzma
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from fundtrail.domain.addresses import canonical_address
from fundtrail.domain.chains import CHAINS
from fundtrail.errors import InputError, InputLimitError, InvalidAddressError, NotFoundError, ParseError
from fundtrail.intel import tagtables  # noqa: F401  (registers the tag tables)
from fundtrail.limits import ENV_VARS, InputLimits, input_limits, read_bounded
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)

TAXONOMY_DIR = Path(__file__).with_name("taxonomy")


PACK_ONLY_FIELDS = frozenset({"title", "creator", "description", "owner", "is_public", "tags"})
"""Header fields that describe the pack itself and are not inherited by its tags."""

_TEXT_FIELDS = ("label", "source", "currency", "network", "confidence", "category", "abuse", "address",
                "tx_hash", "actor", "tag_type")
_CONCEPT_FIELDS = ("category", "abuse")

NETWORK_CHAINS: dict[str, str] = {
    "BTC": "btc", "XBT": "btc", "ETH": "eth", "LTC": "ltc", "BCH": "bch", "DOGE": "doge", "ZEC": "zec",
    "DASH": "dash", "BSC": "bsc", "BEP20": "bsc", "BNB": "bsc", "MATIC": "polygon", "POLYGON": "polygon",
    "POL": "polygon", "ARB": "arb", "ARBITRUM": "arb", "OP": "op", "OPTIMISM": "op", "BASE": "base",
    "AVAX": "avax", "ETC": "etc", "TRX": "trx", "TRON": "trx", "TRC20": "trx",
}
"""TagPack currency/network codes of the chains FundTrail knows, mapped to FundTrail chain names."""


def chain_for_network(code: str) -> str:
    """The FundTrail chain of a TagPack currency/network code; unknown codes stay, in lower case."""
    code = code.strip()
    return NETWORK_CHAINS.get(code.upper(), code.lower())


# ------------------------------------------------------------------------------------------------
# Taxonomy


@dataclass(frozen=True, slots=True)
class Taxonomy:
    """The concept, confidence, country and tag-type vocabularies that TagPacks are checked against."""

    concepts: Mapping[str, str | None]
    """concept id -> its broader concept (None for the top)."""
    confidence_levels: Mapping[str, int]
    countries: frozenset[str]
    tag_types: frozenset[str]

    def is_concept(self, concept_id: str) -> bool:
        """True when ``concept_id`` is a concept of the taxonomy."""
        return concept_id in self.concepts

    def ancestors(self, concept_id: str) -> list[str]:
        """The concept and every broader concept above it, nearest first."""
        out: list[str] = []
        current: str | None = concept_id
        while current is not None and current not in out:
            out.append(current)
            current = self.concepts.get(current)
        return out

    @property
    def unknown_confidence_level(self) -> int:
        """The level a tag without a confidence ranks at (that of ``unknown``)."""
        return self.confidence_levels.get("unknown", 0)


@lru_cache(maxsize=4)
def load_taxonomy(directory: Path = TAXONOMY_DIR) -> Taxonomy:
    """Read the taxonomy files of ``directory`` (the copy shipped with FundTrail by default)."""
    raw = yaml.load((directory / "concepts.yaml").read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    concepts: dict[str, str | None] = {}
    for key, value in raw.items():
        if key == "scheme" or not isinstance(value, dict):
            continue
        broader = value.get("broader")
        concepts[str(value.get("id", key))] = str(broader) if broader else None
    with (directory / "confidence.csv").open(encoding="utf-8", newline="") as fh:
        levels = {row["id"].strip(): int(row["level"].strip()) for row in csv.DictReader(fh)}
    with (directory / "countries.csv").open(encoding="utf-8", newline="") as fh:
        countries = frozenset(row["id"].strip() for row in csv.DictReader(fh))
    with (directory / "tag_types.csv").open(encoding="utf-8", newline="") as fh:
        tag_types = frozenset(row["id"].strip() for row in csv.DictReader(fh))
    return Taxonomy(concepts, levels, countries, tag_types)


# ------------------------------------------------------------------------------------------------
# Reading and validating


class TagPackHeader(BaseModel):
    """The header of a TagPack as written (tag fields in the header are inherited by every tag)."""

    model_config = ConfigDict(extra="allow")

    title: str
    creator: str
    description: str | None = None
    owner: str | None = None
    is_public: bool | None = None
    tags: list[dict[str, Any]]


class ActorModel(BaseModel):
    """One actor of an ActorPack."""

    model_config = ConfigDict(extra="allow")

    id: str
    uri: str
    label: str
    lastmod: date | datetime | str | None = None
    categories: list[str]
    jurisdictions: list[str] = []
    aliases: list[str] = []
    context: dict[str, Any] | str | None = None


class ActorPackModel(BaseModel):
    """An ActorPack: a header and its ``actors`` list."""

    model_config = ConfigDict(extra="allow")

    title: str
    creator: str
    description: str | None = None
    is_public: bool | None = None
    lastmod: date | datetime | str | None = None
    actors: list[ActorModel]


def _plain(value: Any) -> Any:
    """A YAML value as plain JSON-able data: dates become ISO text."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _plain_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """:func:`_plain` for a flat mapping of tag fields, without copying when nothing needs it."""
    for value in fields.values():
        if isinstance(value, date | dict | list | tuple):
            return {str(k): _plain(v) for k, v in fields.items()}
    return fields


def _alias_growth(root: yaml.Node, source: str, limits: InputLimits) -> None:
    """Refuse a composed document whose aliases expand it past the bound, recur, or nest too deeply.

    The composer shares an aliased node instead of copying it, so the document is small in memory; what
    reads it afterwards (validation, storing) walks every alias as a full copy. The walk here counts
    that expanded size once per distinct node, without expanding anything.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children: list[yaml.Node]
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        if finished:
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            open_nodes.discard(key)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise ParseError(source, f"line {node.start_mark.line + 1}", "an alias refers to a node that "
                                                                        "holds it (a recursive document)")
        distinct += 1
        open_nodes.add(key)
        if len(open_nodes) > limits.max_nesting:
            raise InputLimitError(source, f"line {node.start_mark.line + 1}",
                                  f"nested more than {limits.max_nesting} levels deep",
                                  ENV_VARS["max_nesting"])
        stack.append((node, True))
        for c in children:
            if id(c) in sizes:
                continue
            if isinstance(c, yaml.ScalarNode):
                sizes[id(c)] = 1
                distinct += 1
            else:
                stack.append((c, False))
    added = sizes[id(root)] - distinct
    if added > limits.max_yaml_alias_nodes:
        raise InputLimitError(source, None, f"YAML aliases expand the document by {added:,} nodes, more "
                                            f"than {limits.max_yaml_alias_nodes:,} (an alias bomb?)",
                              ENV_VARS["max_yaml_alias_nodes"])


def load_yaml_text(data: bytes | str, source: str, limits: InputLimits | None = None) -> Any:
    """Parse one YAML document with the C loader, within the alias, nesting and size bounds."""
    limits = limits or input_limits()
    if len(data) > limits.max_document_bytes:
        raise InputLimitError(source, None, f"larger than {limits.max_document_bytes:,} bytes",
                              ENV_VARS["max_document_bytes"])
    loader = yaml.CSafeLoader(data)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _alias_growth(node, source, limits)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: Path, limits: InputLimits | None = None) -> Any:
    """Load a YAML file (``.xz`` compressed or not) with the C loader, within the input bounds.

    A document over ``max_document_bytes`` (after decompression), nested deeper than ``max_nesting`` or
    whose aliases would add more than ``max_yaml_alias_nodes`` nodes is refused naming the file.
    """
    limits = limits or input_limits()
    source = str(path)
    try:
        if path.is_dir():
            raise ParseError(source, None, "is a folder, not a YAML file")
        opener = lzma.open if path.name.endswith(".xz") else open
        with opener(path, "rb") as fh:
            data = read_bounded(fh, source, limits)  # type: ignore[arg-type]
        return load_yaml_text(data.decode("utf-8"), source, limits)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ParseError(source, where, f"not valid YAML: {problem}") from None
    except UnicodeDecodeError as exc:
        raise ParseError(source, None, f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                                       f"{exc.start})") from None
    except lzma.LZMAError as exc:
        raise ParseError(source, None, f"cannot read: {exc}") from None
    except RecursionError:
        raise InputLimitError(source, None, "nested too deeply to read", ENV_VARS["max_nesting"]) from None


@dataclass(frozen=True, slots=True)
class ParsedTag:
    """One fully-resolved tag of a pack, ready to store."""

    index: int
    chain: str
    address: str
    resolved: Mapping[str, Any]
    own: Mapping[str, Any]
    invalid_reason: str | None


@dataclass(frozen=True, slots=True)
class ParsedPack:
    """A validated TagPack: its header (as written) and its tags."""

    source: str
    header: Mapping[str, Any]
    tags: tuple[ParsedTag, ...]
    skipped: tuple[str, ...] = ()


def _check_type(source: str, where: str, name: str, value: Any) -> None:
    if name in _TEXT_FIELDS and not isinstance(value, str):
        raise ParseError(source, where, f"field {name} must be text, not {type(value).__name__} "
                                        f"({value!r}); quote it")
    if name == "is_cluster_definer" and not isinstance(value, bool):
        raise ParseError(source, where, f"field is_cluster_definer must be true or false, not {value!r}")
    if name == "concepts" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ParseError(source, where, f"field concepts must be a list of concept ids, not {value!r}")
    if name == "lastmod" and not isinstance(value, date | datetime | str):
        raise ParseError(source, where, f"field lastmod must be a date, not {value!r}")


def _check_taxonomy(source: str, where: str, fields: Mapping[str, Any], taxonomy: Taxonomy) -> None:
    for name in _CONCEPT_FIELDS:
        value = fields.get(name)
        if value is not None and not taxonomy.is_concept(value):
            raise ParseError(source, where, f"field {name}: {value!r} is not a concept of the taxonomy")
    for concept in fields.get("concepts") or ():
        if not taxonomy.is_concept(concept):
            raise ParseError(source, where, f"field concepts: {concept!r} is not a concept of the taxonomy")
    confidence = fields.get("confidence")
    if confidence is not None and confidence not in taxonomy.confidence_levels:
        raise ParseError(source, where, f"field confidence: {confidence!r} is not a confidence id "
                                        f"({', '.join(sorted(taxonomy.confidence_levels))})")
    tag_type = fields.get("tag_type")
    if tag_type is not None and tag_type not in taxonomy.tag_types:
        raise ParseError(source, where, f"field tag_type: {tag_type!r} is not a tag type")


def _canonical(chain: str, address: str) -> tuple[str, str | None]:
    """(canonical address, None) or (address as written, reason) when invalid for a known chain."""
    text = address.strip()
    if chain not in CHAINS:
        return text, None
    try:
        return canonical_address(chain, text), None
    except InvalidAddressError as exc:
        return text, str(exc)
    except InputError as exc:  # codec errors that are not address errors still mean "invalid"
        return text, str(exc)


def parse_tagpack(document: Any, source: str, taxonomy: Taxonomy | None = None) -> ParsedPack:
    """Validate a loaded TagPack document and resolve its tags (header inheritance, chain, address)."""
    taxonomy = taxonomy or load_taxonomy()
    if not isinstance(document, dict):
        raise ParseError(source, None, "a TagPack is a mapping with a header and a tags list")
    try:
        header_model = TagPackHeader.model_validate(document)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "header, field " + ".".join(str(p) for p in err["loc"])
        raise ParseError(source, where, err["msg"]) from None
    header = {k: v for k, v in document.items() if k != "tags"}
    inherited = {k: v for k, v in header.items() if k not in PACK_ONLY_FIELDS}
    for name, value in inherited.items():
        _check_type(source, "header", name, value)
    _check_taxonomy(source, "header", inherited, taxonomy)
    inherited = _plain_fields(inherited)
    unknown_level = taxonomy.unknown_confidence_level
    tags: list[ParsedTag] = []
    skipped: list[str] = []
    for i, tag in enumerate(header_model.tags):
        where = f"tag {i}"
        for name, value in tag.items():
            _check_type(source, where, name, value)
        _check_taxonomy(source, where, tag, taxonomy)
        own = _plain_fields(tag)
        resolved = {**inherited, **own}
        for name in ("label", "source"):
            if not resolved.get(name):
                raise ParseError(source, where, f"field {name} is missing (in the tag and the header)")
        network = resolved.get("network") or resolved.get("currency")
        if not network:
            raise ParseError(source, where,
                             "field currency (or network) is missing (in the tag and the header)")
        address = resolved.get("address")
        if not address:
            skipped.append(f"{where}: no address (transaction tags are not stored)")
            continue
        chain = chain_for_network(network)
        canonical, reason = _canonical(chain, address)
        if resolved.get("confidence") is None:
            resolved.setdefault("confidence_level", unknown_level)
        else:
            resolved["confidence_level"] = taxonomy.confidence_levels[resolved["confidence"]]
        tags.append(ParsedTag(i, chain, canonical, resolved, own, reason))
    return ParsedPack(source, _plain(header), tuple(tags), tuple(skipped))


def load_tagpack(path: Path, taxonomy: Taxonomy | None = None) -> ParsedPack:
    """Read and validate a TagPack file (``.yaml`` or ``.yaml.xz``)."""
    with _collector_paused():
        return parse_tagpack(read_yaml(path), str(path), taxonomy)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a pack is read and parsed.

    A big pack becomes hundreds of thousands of dicts, lists and strings without a reference cycle among
    them, yet their number alone makes the collector run over all of them again and again: in a process
    holding many objects already (the service, a test run) that doubled the time of a large import.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# ------------------------------------------------------------------------------------------------
# Import


@dataclass(frozen=True, slots=True)
class InvalidTag:
    """A tag whose address is not valid for its chain (kept, and reported)."""

    index: int
    chain: str
    address: str
    reason: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What importing one pack did."""

    uri: str
    title: str | None
    tags: int
    chains: Mapping[str, int]
    invalid: tuple[InvalidTag, ...] = ()
    skipped: tuple[str, ...] = ()
    unknown_chains: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary."""
        return {"uri": self.uri, "title": self.title, "tags": self.tags, "chains": dict(self.chains),
                "invalid_addresses": [{"tag": t.index, "chain": t.chain, "address": t.address,
                                       "reason": t.reason} for t in self.invalid],
                "skipped": list(self.skipped), "unknown_chains": list(self.unknown_chains)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def store_pack(store: ChainStore, pack: ParsedPack, uri: str, *, kind: str = "tagpack",
               sha256: str | None = None) -> ImportResult:
    """Replace the stored rows of pack ``uri`` with ``pack``, in one transaction."""
    tags = pack.tags
    extra = []
    for t in tags:
        item: dict[str, Any] = {"tag": t.own}
        if t.invalid_reason:
            item["invalid_address"] = t.invalid_reason
        extra.append(orjson.dumps(item).decode())

    def col(name: str) -> list[Any]:
        return [t.resolved.get(name) for t in tags]

    table = pa.table({
        "chain": pa.array([t.chain for t in tags], pa.string()),
        "address": pa.array([t.address for t in tags], pa.string()),
        "label": pa.array(col("label"), pa.string()),
        "category": pa.array(col("category"), pa.string()),
        "abuse": pa.array(col("abuse"), pa.string()),
        "actor": pa.array(col("actor"), pa.string()),
        "confidence": pa.array(col("confidence"), pa.string()),
        "confidence_level": pa.array(col("confidence_level"), pa.int32()),
        "source": pa.array(col("source"), pa.string()),
        "is_cluster_definer": pa.array(col("is_cluster_definer"), pa.bool_()),
        "lastmod": pa.array([None if v is None else str(v) for v in col("lastmod")], pa.string()),
        "extra": pa.array(extra, pa.string()),
        "tag_index": pa.array([t.index for t in tags], pa.int32()),
    })
    header = dict(pack.header)
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM tags WHERE tagpack = ?", [uri])
        con.execute("DELETE FROM tagpacks WHERE uri = ?", [uri])
        con.register("_stage_tags", table)
        try:
            con.execute(
                """INSERT INTO tags (chain, address, label, category, abuse, actor, jurisdiction, confidence,
                                     confidence_level, source, tagpack, is_cluster_definer, lastmod, extra,
                                     tag_index)
                   SELECT s.chain, s.address, s.label, s.category, s.abuse, s.actor,
                          CASE WHEN len(a.jurisdictions) > 0 THEN array_to_string(a.jurisdictions, ',') END,
                          s.confidence, s.confidence_level, s.source, $uri, s.is_cluster_definer, s.lastmod,
                          s.extra::JSON, s.tag_index
                   FROM _stage_tags s
                   LEFT JOIN (SELECT id, any_value(jurisdictions) AS jurisdictions FROM actors GROUP BY id) a
                     ON a.id = s.actor""",
                {"uri": uri})
        finally:
            con.unregister("_stage_tags")
        con.execute("INSERT INTO tagpacks VALUES (?, ?, ?, ?, ?::JSON, ?, ?, ?)",
                    [uri, kind, header.get("title"), header.get("creator"), orjson.dumps(header).decode(),
                     len(tags), sha256, datetime.now(UTC).replace(tzinfo=None)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    invalid = tuple(InvalidTag(t.index, t.chain, t.address, t.invalid_reason)
                    for t in tags if t.invalid_reason)
    chains = Counter(t.chain for t in tags)
    for bad in invalid:
        log.info("%s: tag %d: %s", uri, bad.index, bad.reason)
    return ImportResult(uri=uri, title=header.get("title"), tags=len(tags), chains=dict(chains),
                        invalid=invalid, skipped=pack.skipped,
                        unknown_chains=tuple(sorted(c for c in chains if c not in CHAINS)))


def pack_uri(path: Path) -> str:
    """The key under which a pack file's tags are stored: its resolved path."""
    return str(Path(path).resolve())


def import_tagpack(store: ChainStore, path: Path, *, uri: str | None = None,
                   taxonomy: Taxonomy | None = None) -> ImportResult:
    """Validate and import one TagPack file; re-importing the same pack replaces its tags."""
    path = Path(path)
    pack = load_tagpack(path, taxonomy)
    return store_pack(store, pack, uri or pack_uri(path), sha256=_sha256(path))


def import_actorpack(store: ChainStore, path: Path, *, uri: str | None = None,
                     taxonomy: Taxonomy | None = None) -> int:
    """Import an ActorPack (replacing an earlier import of it); fills the jurisdictions of tags.

    Returns the number of actors. Categories are checked against the concepts taxonomy and
    jurisdictions against the country codes.
    """
    path = Path(path)
    taxonomy = taxonomy or load_taxonomy()
    source = str(path)
    document = read_yaml(path)
    try:
        model = ActorPackModel.model_validate(document)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ParseError(source, ".".join(str(p) for p in err["loc"]), err["msg"]) from None
    for i, actor in enumerate(model.actors):
        for concept in actor.categories:
            if not taxonomy.is_concept(concept):
                raise ParseError(source, f"actor {i} ({actor.id})",
                                 f"field categories: {concept!r} is not a concept of the taxonomy")
        for country in actor.jurisdictions:
            if country not in taxonomy.countries:
                raise ParseError(source, f"actor {i} ({actor.id})",
                                 f"field jurisdictions: {country!r} is not a country code")
    uri = uri or pack_uri(path)
    table = pa.table({
        "id": pa.array([a.id for a in model.actors], pa.string()),
        "label": pa.array([a.label for a in model.actors], pa.string()),
        "uri": pa.array([a.uri for a in model.actors], pa.string()),
        "categories": pa.array([a.categories for a in model.actors], pa.list_(pa.string())),
        "jurisdictions": pa.array([a.jurisdictions for a in model.actors], pa.list_(pa.string())),
        "aliases": pa.array([a.aliases for a in model.actors], pa.list_(pa.string())),
        "lastmod": pa.array([_lastmod_text(a.lastmod if a.lastmod is not None else model.lastmod)
                             for a in model.actors], pa.string()),
        "context": pa.array([None if a.context is None else orjson.dumps(_plain(a.context)).decode()
                             for a in model.actors], pa.string()),
    })
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM actors WHERE actorpack = ?", [uri])
        con.register("_stage_actors", table)
        try:
            con.execute("""INSERT INTO actors SELECT id, label, uri, categories, jurisdictions, aliases,
                                  lastmod, context::JSON, $uri FROM _stage_actors""", {"uri": uri})
        finally:
            con.unregister("_stage_actors")
        con.execute(
            """UPDATE tags SET jurisdiction = CASE WHEN len(a.jurisdictions) > 0
                                              THEN array_to_string(a.jurisdictions, ',') END
               FROM (SELECT id, any_value(jurisdictions) AS jurisdictions FROM actors GROUP BY id) a
               WHERE tags.actor = a.id""")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return len(model.actors)


def is_actorpack(path: Path) -> bool:
    """True for files named like ActorPacks (``*.actorpack.yaml[.xz]``)."""
    return ".actorpack." in Path(path).name


def tagpack_files(paths: Iterable[Path]) -> list[Path]:
    """The TagPack files among ``paths``, directories searched recursively (sorted, stable)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file()
                              and (q.name.endswith((".yaml", ".yml", ".yaml.xz", ".yml.xz")))))
        else:
            out.append(p)
    return out


def delete_pack(store: ChainStore, uri: str) -> int:
    """Remove a pack's tags; returns how many were removed. NotFoundError when not imported."""
    row = store.con.execute("SELECT tag_count FROM tagpacks WHERE uri = ?", [uri]).fetchone()
    if row is None:
        raise NotFoundError("tagpack", uri)
    store.con.execute("BEGIN TRANSACTION")
    try:
        store.con.execute("DELETE FROM tags WHERE tagpack = ?", [uri])
        store.con.execute("DELETE FROM tagpacks WHERE uri = ?", [uri])
        store.con.execute("COMMIT")
    except BaseException:
        store.con.execute("ROLLBACK")
        raise
    return int(row[0])


# ------------------------------------------------------------------------------------------------
# Resolved tags and export

RESOLVED_FIELDS = ("chain", "address", "label", "category", "abuse", "actor", "confidence", "source",
                   "is_cluster_definer", "lastmod", "currency", "network", "concepts", "context", "tag_type")
"""The fields that identify a fully-resolved tag (what an export must preserve)."""


@dataclass(frozen=True, slots=True)
class ResolvedTag:
    """A tag with every inherited field filled in; equal tags have equal fields, whatever pack holds them."""

    chain: str
    address: str
    label: str | None
    category: str | None
    abuse: str | None
    actor: str | None
    confidence: str | None
    source: str | None
    is_cluster_definer: bool | None
    lastmod: str | None
    currency: str | None
    network: str | None
    concepts: tuple[str, ...]
    context: str | None
    tag_type: str | None


def _lastmod_text(value: Any) -> str | None:
    return None if value is None else str(_plain(value))


def _resolved_tag(chain: str, address: str, fields: Mapping[str, Any]) -> ResolvedTag:
    context = fields.get("context")
    return ResolvedTag(
        chain=chain, address=address, label=fields.get("label"), category=fields.get("category"),
        abuse=fields.get("abuse"), actor=fields.get("actor"), confidence=fields.get("confidence"),
        source=fields.get("source"), is_cluster_definer=fields.get("is_cluster_definer"),
        lastmod=_lastmod_text(fields.get("lastmod")), currency=fields.get("currency"),
        network=fields.get("network"), concepts=tuple(fields.get("concepts") or ()),
        context=context if context is None or isinstance(context, str) else orjson.dumps(context).decode(),
        tag_type=fields.get("tag_type"))


def resolved_tags_of(pack: ParsedPack) -> set[ResolvedTag]:
    """The fully-resolved tags of a parsed pack."""
    return {_resolved_tag(t.chain, t.address, t.resolved) for t in pack.tags}


def _stored_rows(store: ChainStore, uri: str | None = None, chain: str | None = None
                 ) -> Iterable[tuple[str, str, str, Mapping[str, Any], Mapping[str, Any]]]:
    """(uri, chain, address, header, own fields) of stored tags, in pack then tag order."""
    headers = {u: orjson.loads(h) if h else {} for u, h in
               store.con.execute("SELECT uri, header FROM tagpacks").fetchall()}
    where, params = [], []
    if uri is not None:
        where.append("tagpack = ?")
        params.append(uri)
    if chain is not None:
        where.append("chain = ?")
        params.append(chain)
    sql = ("SELECT tagpack, chain, address, extra FROM tags"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY tagpack, tag_index")
    cursor = store.con.execute(sql, params)
    while batch := cursor.fetchmany(50_000):
        for tagpack, tag_chain, address, extra in batch:
            own = orjson.loads(extra).get("tag", {}) if extra else {}
            yield tagpack, tag_chain, address, headers.get(tagpack, {}), own


def stored_resolved_tags(store: ChainStore, uri: str | None = None,
                         chain: str | None = None) -> set[ResolvedTag]:
    """The fully-resolved tags held in the store (of one pack, or all)."""
    out = set()
    for _, tag_chain, address, header, own in _stored_rows(store, uri, chain):
        inherited = {k: v for k, v in header.items() if k not in PACK_ONLY_FIELDS}
        out.add(_resolved_tag(tag_chain, address, {**inherited, **own}))
    return out


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _yaml_value(key: str, value: Any) -> Any:
    """Dates kept as ISO text are written back as YAML dates, as TagPacks write them."""
    if key == "lastmod" and isinstance(value, str):
        if _ISO_DATE.match(value):
            return date.fromisoformat(value)
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _dump_pack(path: Path, header: Mapping[str, Any], tags: list[Mapping[str, Any]]) -> None:
    doc: dict[str, Any] = {k: _yaml_value(k, v) for k, v in header.items() if k != "tags"}
    doc["tags"] = [{k: _yaml_value(k, v) for k, v in t.items()} for t in tags]
    with path.open("w", encoding="utf-8") as fh:
        yaml.dump(doc, fh, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True, width=1000)


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "tagpack"
    return name[:120]


def export_tagpacks(store: ChainStore, out_dir: Path, *, chain: str | None = None,
                    by: str = "pack", uri: str | None = None) -> list[Path]:
    """Write the stored tags as TagPacks into ``out_dir``; returns the files written.

    ``by="pack"`` writes one pack per imported pack with its original header and per-tag fields;
    ``by="category"`` writes one pack per category (else abuse) with fully-resolved tags.
    ``chain`` keeps only the tags of that chain, ``uri`` only those of one imported pack. The actors
    the tags name go with them as ``actors.actorpack.yaml`` (their names and jurisdictions). Importing
    the folder again yields the same fully-resolved tags, jurisdictions included.
    """
    if by not in ("pack", "category"):
        raise InputError(f"export by {by!r}: expected 'pack' or 'category'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    used: set[str] = {"actors.actorpack"}

    def target(stem: str) -> Path:
        name = _safe_name(stem)
        candidate, n = name, 1
        while candidate in used:
            n += 1
            candidate = f"{name}_{n}"
        used.add(candidate)
        return out_dir / f"{candidate}.yaml"

    actors: set[str] = set()
    written = _export_tags(store, target, chain=chain, by=by, uri=uri, actors=actors)
    actor_pack = _export_actors(store, out_dir / "actors.actorpack.yaml", actors)
    return written + ([actor_pack] if actor_pack is not None else [])


def _export_tags(store: ChainStore, target: Callable[[str], Path], *, chain: str | None, by: str,
                 uri: str | None, actors: set[str]) -> list[Path]:
    """Write the TagPacks of :func:`export_tagpacks`; adds the actor ids the tags name to ``actors``."""
    written: list[Path] = []
    if by == "pack":
        current: str | None = None
        header: Mapping[str, Any] = {}
        tags: list[Mapping[str, Any]] = []

        def flush() -> None:
            if current is not None and tags:
                stem = Path(current).name
                for suffix in (".xz", ".yaml", ".yml", ".json", ".csv"):
                    stem = stem.removesuffix(suffix)
                path = target(stem)
                _dump_pack(path, header, tags)
                written.append(path)

        for tag_uri, _, _, pack_header, own in _stored_rows(store, uri, chain):
            if tag_uri != current:
                flush()
                current, header, tags = tag_uri, pack_header, []
            tags.append(own)
            actor = own.get("actor") or pack_header.get("actor")
            if actor:
                actors.add(str(actor))
        flush()
        return written

    groups: dict[str, list[Mapping[str, Any]]] = {}
    for _, _, _, pack_header, own in _stored_rows(store, uri, chain):
        inherited = {k: v for k, v in pack_header.items() if k not in PACK_ONLY_FIELDS}
        resolved = {**inherited, **own}
        if resolved.get("actor"):
            actors.add(str(resolved["actor"]))
        key = resolved.get("category") or resolved.get("abuse") or "uncategorised"
        groups.setdefault(key, []).append(resolved)
    today = datetime.now(UTC).date().isoformat()
    for key in sorted(groups):
        path = target(key)
        header = {"title": f"FundTrail export: {key}", "creator": "FundTrail",
                  "description": f"Tags of category {key}" + (f" on {chain}" if chain else "")
                                 + f", exported {today}"}
        _dump_pack(path, header, groups[key])
        written.append(path)
    return written


def _export_actors(store: ChainStore, path: Path, ids: set[str]) -> Path | None:
    """Write the stored actors that exported tags name as an ActorPack (their names and jurisdictions
    travel with the tags); None when no exported tag names a known actor."""
    if not ids:
        return None
    rows = store.con.execute(
        """SELECT id, any_value(label), any_value(uri), any_value(categories), any_value(jurisdictions),
                  any_value(aliases), any_value(lastmod), any_value(context)
           FROM actors WHERE list_contains($ids, id) GROUP BY id ORDER BY id""",
        {"ids": sorted(ids)}).fetchall()
    if not rows:
        return None
    actors = []
    for actor_id, label, actor_uri, categories, jurisdictions, aliases, lastmod, context in rows:
        actor: dict[str, Any] = {"id": actor_id, "label": label, "uri": actor_uri,
                                 "categories": list(categories or [])}
        if jurisdictions:
            actor["jurisdictions"] = list(jurisdictions)
        if aliases:
            actor["aliases"] = list(aliases)
        if lastmod:
            actor["lastmod"] = _yaml_value("lastmod", lastmod)
        if context is not None:
            actor["context"] = orjson.loads(context) if isinstance(context, str) else context
        actors.append(actor)
    doc = {"title": "FundTrail export: actors of the exported tags", "creator": "FundTrail",
           "actors": actors}
    with path.open("w", encoding="utf-8") as fh:
        yaml.dump(doc, fh, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True, width=1000)
    return path
