"""Risk of an address: gather evidence over the store, evaluate the indicator catalogue, score, explain.

The catalogue (``indicators.yaml`` next to this module) is data; an ``indicators.yaml`` in the FundTrail
home and a file given with ``--indicators`` override or extend it (see the catalogue's header). Each
indicator names a *check*; the checks here gather their facts with SQL (tags, sanctions, exposure,
mixing transactions, peel chains, timing and amounts of payments) and hand them to the pure rules of
:mod:`fundtrail.domain.risk`. Every fired indicator carries its evidence: transactions, values,
counterparties, tags and their sources.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fundtrail.analysis.coinjoin import mixer_interactions
from fundtrail.analysis.conversions import _conversion_of_row as conversion_of_row
from fundtrail.analysis.exposure import (
    DirectExposure,
    IndirectExposure,
    direct_exposure,
    exposure_document,
    indirect_exposure,
)
from fundtrail.domain.chains import get_chain
from fundtrail.domain.conversions import Conversion
from fundtrail.domain.risk import (
    Evidence,
    FiredIndicator,
    IndicatorDefinition,
    PassThrough,
    Payment,
    RiskAssessment,
    RiskLevel,
    assess,
    definition_from_mapping,
    fifo_pass_through,
    matches_categories,
    merge_catalogue,
    near_threshold,
    rapid_movement,
)
from fundtrail.errors import InputError, ParseError
from fundtrail.intel.sanctions import SanctionHit, check_address
from fundtrail.intel.tagpacks import load_taxonomy
from fundtrail.intel.tagstore import TagView, canonical_or_given, cluster_of, has_table, tags_for
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)

DEFAULT_CATALOGUE = Path(__file__).with_name("indicators.yaml")
HOME_CATALOGUE = "indicators.yaml"
PATTERN_SOURCE = "fundtrail pattern detection (tx_patterns)"
MAX_EVIDENCE = 25
"""Evidence items kept per indicator (largest first); the summary gives the full count."""


# ------------------------------------------------------------------------------------------------
# The catalogue file


class IndicatorEntry(BaseModel):
    """One indicator entry of a catalogue file (complete for new ids, partial for overrides)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str | None = None
    description: str | None = None
    source: str | None = None
    section: str | None = None
    check: str | None = None
    weight: int | None = Field(default=None, ge=0, le=100)
    floor: RiskLevel | None = None
    parameters: dict[str, Any] | None = None
    enabled: bool | None = None


class CatalogueFile(BaseModel):
    """An indicator catalogue file."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    indicators: list[IndicatorEntry]


_CATALOGUES: dict[tuple[str, int, int, int], list[dict[str, Any]]] = {}
"""Catalogue files read, by path and file identity (a changed file is read again)."""


def _read_catalogue(path: Path) -> list[dict[str, Any]]:
    """The entries of a catalogue file, parsed once per version of the file (every address document
    loads the catalogue; parsing and validating it costs more than some of its checks)."""
    try:
        st = Path(path).stat()
    except OSError:
        return _parse_catalogue(path)  # reading it says what is wrong
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    entries = _CATALOGUES.get(key)
    if entries is None:
        entries = _parse_catalogue(path)
        if len(_CATALOGUES) > 64:
            _CATALOGUES.clear()
        _CATALOGUES[key] = entries
    return copy.deepcopy(entries)


def _parse_catalogue(path: Path) -> list[dict[str, Any]]:
    try:
        document = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        raise ParseError(str(path), None, f"not valid YAML: {exc}") from None
    try:
        model = CatalogueFile.model_validate(document)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = err["loc"]
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "indicators" and isinstance(loc[1], int):
            ident = (document.get("indicators") or [{}])[loc[1]]
            if isinstance(ident, dict) and "id" in ident:
                where += f" ({ident['id']})"
        raise ParseError(str(path), where, err["msg"]) from None
    return [entry.model_dump(exclude_none=True) for entry in model.indicators]


def load_catalogue(*extra: Path | None, home: Path | None = None) -> dict[str, IndicatorDefinition]:
    """The default catalogue, then ``home/indicators.yaml`` when present, then each ``extra`` file."""
    catalogue = {e["id"]: definition_from_mapping(e) for e in _read_catalogue(DEFAULT_CATALOGUE)}
    files = []
    if home is not None and (Path(home) / HOME_CATALOGUE).is_file():
        files.append(Path(home) / HOME_CATALOGUE)
    files.extend(Path(p) for p in extra if p is not None)
    for path in files:
        entries = _read_catalogue(path)
        for entry in entries:
            if entry["id"] not in catalogue:
                missing = [k for k in ("title", "description", "source", "check", "weight") if k not in entry]
                if missing:
                    raise ParseError(str(path), f"indicator {entry['id']}",
                                     f"a new indicator needs {', '.join(missing)}")
        catalogue = merge_catalogue(catalogue, entries)
    for d in catalogue.values():
        if d.check not in CHECKS:
            raise InputError(f"indicator {d.id}: unknown check {d.check!r} "
                             f"(known: {', '.join(sorted(CHECKS))})")
    return catalogue


# ------------------------------------------------------------------------------------------------
# Facts about one address, gathered lazily


@dataclass
class AddressFacts:
    """What the checks know about an address; each fact is queried once, when first needed."""

    store: ChainStore
    chain: str
    address: str
    trace: bool = True
    """Whether indirect exposure may be traced (tracing is the costly part of an evaluation)."""
    notes: list[str] = field(default_factory=list)
    _indirect: dict[int, IndirectExposure] = field(default_factory=dict)

    @cached_property
    def params(self) -> Any:
        """The chain's parameters."""
        return get_chain(self.chain)

    @cached_property
    def address_id(self) -> int | None:
        """The interned id, or None when the store has never seen the address."""
        return self.store.address_id(self.chain, self.address)

    @cached_property
    def self_ids(self) -> list[int]:
        """The address's id and those of its cluster."""
        if self.address_id is None:
            return []
        if not has_table(self.store, "clusters"):
            return [self.address_id]
        rows = self.store.con.execute(
            """SELECT m.address_id FROM clusters c JOIN clusters m
               ON m.chain = c.chain AND m.cluster_id = c.cluster_id WHERE c.chain = ? AND c.address_id = ?""",
            [self.chain, self.address_id]).fetchall()
        return sorted({self.address_id, *(int(r[0]) for r in rows)})

    @cached_property
    def cluster(self) -> tuple[int, int] | None:
        """(cluster id, size), when clusters are computed and the address is in one."""
        return cluster_of(self.store, self.chain, self.address)

    @cached_property
    def tags(self) -> list[TagView]:
        """Direct tags, then cluster tags."""
        return tags_for(self.store, self.chain, self.address)

    @cached_property
    def sanctions(self) -> list[SanctionHit]:
        """Lists the address is on (or was on)."""
        return check_address(self.store, self.chain, self.address)

    @cached_property
    def conversions(self) -> list[tuple[str, Conversion]]:
        """The stored conversions the address took part in: ("in", c) when it sent the in transaction
        (a deposit, a bridge send, a swap's payment), ("out", c) when it received the out side."""
        if not has_table(self.store, "conversions"):
            return []
        cols = ("kind, rule, confidence, candidates, anonymity_set, in_chain, in_txid, in_address, "
                "in_asset, in_value, in_time, out_chain, out_txid, out_address, out_asset, out_value, "
                "out_time, evidence")
        rows = self.store.con.execute(
            f"""SELECT 'out', {cols} FROM conversions WHERE out_chain = $chain AND lower(out_address) = $low
                UNION ALL
                SELECT 'in', {cols} FROM conversions
                WHERE in_chain = $chain AND $id IS NOT NULL AND in_txid IN (
                    SELECT txid FROM transfers WHERE chain = $chain AND from_id = $id
                    UNION SELECT txid FROM inputs WHERE chain = $chain AND address_id = $id)
                ORDER BY 1, 12, 8, 3, 14, 15""",
            {"chain": self.chain, "low": self.address.lower(), "id": self.address_id}).fetchall()
        return [(str(r[0]), conversion_of_row(r[1:])) for r in rows]

    @cached_property
    def ancestors(self) -> dict[str, list[str]]:
        """Concept -> itself and its broader concepts."""
        taxonomy = load_taxonomy()
        return {c: taxonomy.ancestors(c) for c in taxonomy.concepts}

    @cached_property
    def direct(self) -> DirectExposure:
        """Direct exposure."""
        return direct_exposure(self.store, self.chain, self.address)

    def indirect(self, max_hops: int) -> IndirectExposure:
        """Indirect exposure traced up to ``max_hops``."""
        if not self.trace:
            return IndirectExposure(False, "not requested")
        if max_hops not in self._indirect:
            totals = self.direct.totals
            result = indirect_exposure(self.store, self.chain, self.address, max_hops=max_hops, totals=totals)
            if not result.available and result.reason and result.reason not in self.notes:
                self.notes.append(f"indirect exposure not evaluated: {result.reason}")
            self._indirect[max_hops] = result
        return self._indirect[max_hops]

    def matches(self, labels: list[str | None], wanted: list[str]) -> str | None:
        """The first label that is, or is narrower than, one of ``wanted``."""
        return matches_categories(labels, wanted, self.ancestors)


Check = Callable[[AddressFacts, IndicatorDefinition], FiredIndicator | None]


def _n(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _fmt(value: int, chain: str, asset: str = "native") -> str:
    if asset != "native":
        return f"{value} (token {asset})"
    params = get_chain(chain)
    whole, frac = divmod(value, 10 ** params.decimals)
    text = f"{whole}.{frac:0{params.decimals}d}".rstrip("0").rstrip(".")
    return f"{text} {params.symbol}"


# ------------------------------------------------------------------------------------------------
# Checks


def _privacy_asset(facts: AddressFacts, chain: str, asset: str, d: IndicatorDefinition) -> bool:
    """Whether a conversion's out side is a privacy coin: a privacy chain's own coin, a listed privacy
    asset (``privacy_assets``, token contracts in any case) or a token tagged with ``privacy_categories``."""
    if chain in set(d.param("privacy_chains", [])) and asset == "native":
        return True
    if asset.lower() in {str(a).lower() for a in d.param("privacy_assets", [])}:
        return True
    wanted = list(d.param("privacy_categories", []))
    if not wanted or asset == "native" or not has_table(facts.store, "tags"):
        return False
    rows = facts.store.query("SELECT category FROM tags WHERE chain = ? AND lower(address) = ?",
                             [chain, asset.lower()])
    return facts.matches([r[0] for r in rows], wanted) is not None


def check_conversion(facts: AddressFacts, d: IndicatorDefinition) -> FiredIndicator | None:
    """Conversions (swaps, bridges, pools) the address took part in, of the indicator's ``kinds``; with
    ``cross_chain`` only those that changed chain, with ``into_privacy`` only those paying out a privacy
    coin. Each is evidence with its transaction, rule and confidence."""
    kinds = set(d.param("kinds", ["pool"]))
    cross_chain = bool(d.param("cross_chain", False))
    into_privacy = bool(d.param("into_privacy", False))
    min_confidence = float(d.param("min_confidence", 0.0))
    evidence: list[Evidence] = []
    for role, c in facts.conversions:
        if c.kind.value not in kinds or c.confidence < min_confidence:
            continue
        if cross_chain and c.in_.chain == c.out.chain:
            continue
        if into_privacy and not _privacy_asset(facts, c.out.chain, c.out.asset, d):
            continue
        leg, other = (c.in_, c.out) if role == "in" else (c.out, c.in_)
        verb = "sent into" if role == "in" else "received from"
        more = f", {c.candidates} candidates" if c.candidates > 1 else ""
        if c.anonymity_set is not None:
            more += f", anonymity set {c.anonymity_set}"
        evidence.append(Evidence(
            kind="conversion", txid=leg.txid, address=facts.address, counterparty=c.in_.address,
            value=leg.value, asset=leg.asset, category=c.kind.value, label=c.rule,
            confidence=round(c.confidence * 100), source="fundtrail conversions",
            description=f"{verb} {c.kind.value} {c.in_.address} in {leg.txid} ({c.rule}, confidence "
                        f"{c.confidence:.2f}{more}): {c.in_.chain} -> {c.out.chain}, "
                        f"{_fmt(leg.value, leg.chain, leg.asset)}; other side {other.chain} {other.txid}"))
    if not evidence:
        return None
    txs = {e.txid for e in evidence if e.txid}
    summary = (f"{_n(len(evidence), 'conversion')} ({', '.join(sorted(kinds))}) in "
               f"{_n(len(txs), 'transaction')}")
    return FiredIndicator(d, summary, tuple(evidence[:MAX_EVIDENCE]), len(evidence))


def check_sanctioned(facts: AddressFacts, d: IndicatorDefinition) -> FiredIndicator | None:
    """The address (or its cluster) is listed, or tagged with a sanction-like abuse."""
    evidence: list[Evidence] = []
    for hit in facts.sanctions:
        if not hit.is_listed:
            continue
        where = "" if hit.same_chain else f" (listed for {hit.chain})"
        evidence.append(Evidence(kind="sanction", address=hit.address, category="sanction",
                                 label=f"{hit.list_name} {hit.asset_code}", source=hit.source,
                                 description=f"on {hit.list_name} ({hit.asset_code}){where} since "
                                             f"{hit.first_listed_on}, in the list of {hit.latest_snapshot}"))
    if d.param("include_cluster", True) and facts.address_id is not None and len(facts.self_ids) > 1:
        rows = facts.store.con.execute(
            """WITH latest AS (SELECT list_name, asset_code, max(listed_on) AS day FROM sanctions
                               GROUP BY ALL)
               SELECT DISTINCT a.address, s.list_name, s.asset_code, s.source FROM addresses a
               JOIN sanctions s ON s.chain = a.chain AND s.address = a.address
               JOIN latest l ON l.list_name = s.list_name AND l.asset_code = s.asset_code
                            AND l.day = s.listed_on
               WHERE a.chain = $c AND list_contains($ids, a.id) AND a.id <> $x ORDER BY 1 LIMIT 50""",
            {"c": facts.chain, "ids": facts.self_ids, "x": facts.address_id}).fetchall()
        for address, list_name, asset, source in rows:
            evidence.append(Evidence(kind="sanction", address=address, category="sanction",
                                     label=f"{list_name} {asset}", source=source,
                                     description=f"{address}, of the same cluster, is on {list_name} "
                                                 f"({asset})"))
    wanted = list(d.param("tag_categories", ["sanction"]))
    for tag in facts.tags:
        if tag.via_cluster and not d.param("include_cluster", True):
            continue
        matched = facts.matches([tag.abuse, tag.category], wanted)
        if matched:
            how = "its cluster" if tag.via_cluster else "the address"
            evidence.append(Evidence(kind="tag", address=tag.address, category=matched, label=tag.label,
                                     source=tag.source, confidence=tag.confidence_level,
                                     description=f"{how} is tagged {matched} ({tag.label}) by "
                                                 f"{tag.tagpack_title or tag.tagpack}"))
    if not evidence:
        return None
    lists = sorted({e.label for e in evidence if e.kind == "sanction" and e.label})
    summary = (f"listed on {', '.join(lists)}" if lists else "tagged as sanctioned") + \
        (f"; {len(evidence)} pieces of evidence" if len(evidence) > 1 else "")
    return FiredIndicator(d, summary, tuple(evidence[:MAX_EVIDENCE]), len(evidence))


def check_attribution(facts: AddressFacts, d: IndicatorDefinition) -> FiredIndicator | None:
    """The address (or its cluster) is tagged with one of the indicator's categories."""
    wanted = list(d.param("categories", []))
    evidence = []
    for tag in facts.tags:
        if tag.via_cluster and not d.param("include_cluster", True):
            continue
        hit = facts.matches([tag.abuse, tag.category], wanted)
        if hit:
            how = (f"its cluster ({_n(tag.cluster_addresses, 'tagged address', 'tagged addresses')})"
                   if tag.via_cluster else "the address")
            evidence.append(Evidence(kind="tag", address=tag.address, category=hit, label=tag.label,
                                     source=tag.source, confidence=tag.confidence_level,
                                     description=f"{how} is tagged {hit}: {tag.label} "
                                                 f"({tag.confidence or 'unknown'} confidence, "
                                                 f"{tag.tagpack_title or tag.tagpack})"))
    if not evidence:
        return None
    first = evidence[0]
    return FiredIndicator(d, f"tagged {first.category} ({first.label})", tuple(evidence[:MAX_EVIDENCE]),
                          len(evidence))


def _directions(d: IndicatorDefinition) -> tuple[str, ...]:
    direction = d.param("direction", "both")
    if direction not in ("received", "sent", "both"):
        raise InputError(f"indicator {d.id}: direction {direction!r} is not received, sent or both")
    return ("received", "sent") if direction == "both" else (direction,)


def check_exposure(facts: AddressFacts, d: IndicatorDefinition) -> FiredIndicator | None:
    """Counterparties (direct) or trace endpoints (indirect) in the indicator's categories."""
    wanted = list(d.param("categories", []))
    min_share = float(d.param("min_share", 0.0))
    min_value = int(d.param("min_value", 1))
    directions = _directions(d)
    mode = d.param("mode", "direct")
    evidence: list[Evidence] = []
    reasons: list[str] = []
    if mode == "direct":
        exposure = facts.direct
        groups: dict[tuple[str, str], list[Any]] = {}
        for f in exposure.flows:
            if f.direction in directions and facts.matches(list(f.categories), wanted):
                groups.setdefault((f.asset, f.direction), []).append(f)
        totals = exposure.totals
    elif mode == "indirect":
        indirect = facts.indirect(int(d.param("max_hops", 4)))
        if not indirect.available:
            return None
        groups = {}
        for e in indirect.parties:
            if e.direction in directions and facts.matches(list(e.categories), wanted):
                groups.setdefault((e.asset, e.direction), []).append(e)
        totals = indirect.totals
    else:
        raise InputError(f"indicator {d.id}: mode {mode!r} is not direct or indirect")
    for (asset, direction), items in sorted(groups.items()):
        value = sum(i.value for i in items)
        total = totals.get((asset, direction), 0)
        share = value / total if total else 0.0
        if value < min_value or share < min_share:
            continue
        parties = _n(len(items), "counterparty", "counterparties") if mode == "direct" else \
            _n(len(items), "traced address", "traced addresses")
        reasons.append(f"{share:.1%} of {direction} ({_fmt(value, facts.chain, asset)}) "
                       f"{'from' if direction == 'received' else 'to'} {parties}")
        for item in sorted(items, key=lambda i: -i.value):
            evidence.append(_exposure_evidence(facts, item, wanted, mode))
    if not reasons:
        return None
    evidence.sort(key=lambda e: -(e.value or 0))
    return FiredIndicator(d, f"{mode} exposure: " + "; ".join(reasons), tuple(evidence[:MAX_EVIDENCE]),
                          len(evidence))


def _exposure_evidence(facts: AddressFacts, item: Any, wanted: list[str], mode: str) -> Evidence:
    category = facts.matches(list(item.categories), wanted)
    if mode == "direct":
        att = item.attribution
        lists = ", ".join(f"{h.list_name} {h.asset_code}" for h in item.sanctions)
        source = (att.source if att and category != "sanction" else None) or \
            (item.sanctions[0].source if item.sanctions else None)
        label = (att.entity if att else None) or (lists or None)
        more = f" in {item.tx_count} transactions" if item.tx_count > 1 else ""
        return Evidence(
            kind="counterparty", counterparty=item.counterparty, value=item.value, asset=item.asset,
            txid=item.txids[0] if item.txids else None, category=category, label=label, source=source,
            confidence=att.confidence if att else None, share=round(item.value / facts.direct.totals.get(
                (item.asset, item.direction), 1), 6),
            description=f"{item.direction} {_fmt(item.value, facts.chain, item.asset)}"
                        f" {'from' if item.direction == 'received' else 'to'} {item.counterparty} "
                        f"({category}: {label or 'unnamed'}){more}"
                        + (f"; transactions {', '.join(item.txids)}" if item.txids else ""))
    where = item.address or f"transaction {item.txid}"
    return Evidence(kind="traced", counterparty=item.address, txid=item.txid, value=item.value,
                    asset=item.asset, category=category, label=item.entity,
                    description=f"traced {_fmt(item.value, facts.chain, item.asset)} "
                                f"{'from' if item.direction == 'received' else 'to'} {where} "
                                f"({category}: {item.entity or 'unnamed'}), {item.hops} hops away")


def check_mixer(facts: AddressFacts, d: IndicatorDefinition) -> FiredIndicator | None:
    """Every interaction with a mixer: detected mixing transactions and mixer-tagged counterparties."""
    evidence: list[Evidence] = []
    if facts.address_id is not None and facts.params.is_utxo:
        for m in mixer_interactions(facts.store, facts.chain, [facts.address_id]):
            verb = "sent into" if m.direction == "in" else "received from"
            evidence.append(Evidence(
                kind="transaction", txid=m.txid, height=m.height, value=m.value, asset="native",
                category=m.pattern, label=m.rule, confidence=round(m.confidence * 100),
                source=PATTERN_SOURCE,
                description=f"{verb} {m.pattern} transaction {m.txid} ({m.rule}, confidence "
                            f"{m.confidence:.2f}): {_fmt(m.value, facts.chain)}"))
    wanted = list(d.param("categories", ["mixing_service", "coinjoin"]))
    for f in facts.direct.flows:
        category = facts.matches(list(f.categories), wanted)
        if not category:
            continue
        att = f.attribution
        verb = "sent to" if f.direction == "sent" else "received from"
        for txid in f.txids or (None,):
            evidence.append(Evidence(
                kind="counterparty", txid=txid, counterparty=f.counterparty,
                value=f.value if len(f.txids) <= 1 else None, asset=f.asset, category=category,
                label=att.entity if att else None,
                source=att.source if att else None, confidence=att.confidence if att else None,
                description=f"{verb} {category} {att.entity if att else ''} {f.counterparty}"
                            + (f" in {txid}" if txid else "")
                            + (f" ({_fmt(f.value, facts.chain, f.asset)} in {f.tx_count} transactions)"
                               if f.tx_count > 1 else f": {_fmt(f.value, facts.chain, f.asset)}")))
    if not evidence:
        return None
    txs = {e.txid for e in evidence if e.txid}
    summary = f"{_n(len(evidence), 'interaction')} with mixers in {_n(len(txs), 'transaction')}"
    return FiredIndicator(d, summary, tuple(evidence[:MAX_EVIDENCE]), len(evidence))


_STEP_SQL = """
    SELECT (SELECT count(*) FROM inputs i WHERE i.chain = $c AND i.txid = $t AND i.height = $h),
           (SELECT list({'n': o.n, 'address': o.address, 'value': o.value::VARCHAR} ORDER BY o.n)
            FROM outputs o WHERE o.chain = $c AND o.txid = $t AND o.height = $h)"""


def _peel_step(store: ChainStore, chain: str, txid: str, height: int, share: float
               ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(payment, continuing) outputs when the transaction is a peel step: 1 input, 2 addressed outputs."""
    row = store.con.execute(_STEP_SQL, {"c": chain, "t": txid, "h": height}).fetchone()
    if row is None or row[0] != 1 or not row[1] or len(row[1]) != 2:
        return None
    a, b = sorted(row[1], key=lambda o: int(o["value"]))
    if a["address"] is None or b["address"] is None:
        return None
    small, big = int(a["value"]), int(b["value"])
    if not small < big or small > share * (small + big):
        return None
    return a, b


def check_peel_chain(facts: AddressFacts, d: IndicatorDefinition) -> FiredIndicator | None:
    """The address's funds continue along a run of peel steps (detected patterns or a local walk)."""
    if facts.address_id is None or not facts.params.is_utxo:
        return None
    min_length = int(d.param("min_length", 3))
    share = float(d.param("max_payment_share", 0.5))
    max_steps = int(d.param("max_steps", 200))
    store, chain = facts.store, facts.chain
    starts = store.con.execute(
        "SELECT DISTINCT txid, height FROM inputs WHERE chain = ? AND address_id = ? ORDER BY height, txid",
        [chain, facts.address_id]).fetchall()
    best: list[tuple[str, int, dict[str, Any]]] = []
    for txid, height in starts[:50]:
        steps: list[tuple[str, int, dict[str, Any]]] = []
        current: tuple[str, int] | None = (txid, height)
        while current is not None and len(steps) < max_steps:
            step = _peel_step(store, chain, current[0], current[1], share)
            if step is None:
                break
            payment, cont = step
            steps.append((current[0], current[1], payment))
            nxt = store.con.execute("SELECT txid, height FROM inputs WHERE chain = ? AND prev_txid = ? "
                                    "AND prev_n = ? LIMIT 1", [chain, current[0], cont["n"]]).fetchone()
            current = (nxt[0], int(nxt[1])) if nxt else None
        if len(steps) > len(best):
            best = steps
    from_patterns: list[tuple[str, int, int]] = []
    if has_table(store, "tx_patterns"):
        from_patterns = [(r[0], int(r[1]), int(r[2])) for r in store.con.execute(
            """SELECT DISTINCT p.txid, p.height, (p.params->>'length')::INTEGER FROM tx_patterns p
               WHERE p.chain = $c AND p.pattern = 'peel-chain' AND (
                 EXISTS (SELECT 1 FROM inputs i WHERE i.chain = $c AND i.txid = p.txid
                         AND i.height = p.height AND i.address_id = $x)
                 OR EXISTS (SELECT 1 FROM outputs o WHERE o.chain = $c AND o.txid = p.txid
                            AND o.height = p.height AND o.address_id = $x))
               ORDER BY p.height""", {"c": chain, "x": facts.address_id}).fetchall()]
    longest_pattern = max((n for _, _, n in from_patterns), default=0)
    if len(best) < min_length and longest_pattern < min_length:
        return None
    evidence = [Evidence(kind="transaction", txid=t, height=h, counterparty=p["address"],
                         value=int(p["value"]), asset="native",
                         description=f"step {i + 1}: peels {_fmt(int(p['value']), chain)} to {p['address']} "
                                     f"in {t}")
                for i, (t, h, p) in enumerate(best)]
    evidence += [Evidence(kind="pattern", txid=t, height=h, source=PATTERN_SOURCE,
                          description=f"{t} is a step of a detected peel chain of {n} steps")
                 for t, h, n in from_patterns]
    length = max(len(best), longest_pattern)
    peeled = sum(int(p["value"]) for _, _, p in best)
    summary = f"peel chain of {length} steps" + (f", {_fmt(peeled, chain)} peeled off" if best else "")
    return FiredIndicator(d, summary, tuple(evidence[:MAX_EVIDENCE]), length)


def _payments(facts: AddressFacts) -> dict[str, tuple[list[Payment], list[Payment]]]:
    """Per asset: (received, sent) payments of the address with other parties, one per transaction."""
    store, chain, x = facts.store, facts.chain, facts.address_id
    if x is None:
        return {}
    if facts.params.is_utxo:
        rows = store.con.execute(
            """WITH me AS (SELECT unnest($self::BIGINT[]) AS id),
                    rx AS (SELECT o.txid, o.height, sum(o.value)::HUGEINT AS v FROM outputs o
                           WHERE o.chain = $c AND o.address_id = $x GROUP BY ALL),
                    sx AS (SELECT i.txid, i.height FROM inputs i WHERE i.chain = $c AND i.address_id = $x
                           GROUP BY ALL),
                    sent AS (SELECT o.txid, o.height, sum(o.value)::HUGEINT AS v FROM outputs o
                             JOIN sx USING (txid, height)
                             WHERE o.chain = $c
                               AND (o.address_id IS NULL OR o.address_id NOT IN (SELECT id FROM me))
                             GROUP BY ALL)
               SELECT 'received', r.txid, r.height, t.time, r.v FROM rx r
               JOIN txs t ON t.chain = $c AND t.txid = r.txid AND t.height = r.height
               WHERE NOT EXISTS (SELECT 1 FROM sx WHERE sx.txid = r.txid AND sx.height = r.height)
               UNION ALL
               SELECT 'sent', s.txid, s.height, t.time, s.v FROM sent s
               JOIN txs t ON t.chain = $c AND t.txid = s.txid AND t.height = s.height""",
            {"c": chain, "x": x, "self": facts.self_ids}).fetchall()
        out: dict[str, tuple[list[Payment], list[Payment]]] = {"native": ([], [])}
        for direction, txid, height, time, value in rows:
            out["native"][0 if direction == "received" else 1].append(Payment(txid, int(value), height, time))
        return out
    rows = store.con.execute(
        """SELECT CASE WHEN to_id = $x THEN 'received' ELSE 'sent' END, asset, txid, min(height), min(time),
                  sum(value)::HUGEINT
           FROM transfers t WHERE t.chain = $c AND (to_id = $x OR from_id = $x)
             AND from_id IS DISTINCT FROM to_id
             AND kind IN ('native', 'internal', 'token') AND value IS NOT NULL
             AND from_id IS NOT NULL AND to_id IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM txs s WHERE s.chain = $c AND s.txid = t.txid AND s.status = false)
           GROUP BY ALL""", {"c": chain, "x": x}).fetchall()
    out = {}
    for direction, asset, txid, height, time, value in rows:
        pair = out.setdefault(asset, ([], []))
        pair[0 if direction == "received" else 1].append(Payment(txid, int(value), int(height), int(time)))
    return out


def check_rapid_movement(facts: AddressFacts, d: IndicatorDefinition) -> FiredIndicator | None:
    """Received funds leave again within a few blocks or minutes, for most of the value received."""
    max_blocks = d.param("max_blocks")
    max_minutes = d.param("max_minutes")
    max_seconds = None if max_minutes is None else int(max_minutes) * 60
    min_ratio = float(d.param("min_ratio", 0.9))
    min_links = int(d.param("min_links", 1))
    for asset, (received, sent) in _payments(facts).items():
        total = sum(p.value for p in received)
        if not total or not sent:
            continue
        if facts.params.is_utxo:
            links = _utxo_links(facts, {p.txid for p in received})
        else:
            links = fifo_pass_through(sorted(received, key=lambda p: (p.height, p.time)),
                                      sorted(sent, key=lambda p: (p.height, p.time)))
        moved = rapid_movement(total, links, max_blocks=None if max_blocks is None else int(max_blocks),
                               max_seconds=max_seconds)
        if moved.ratio >= min_ratio and len(moved.links) >= min_links:
            evidence = [Evidence(kind="transaction", txid=link.out_txid, value=link.value, asset=asset,
                                 description=f"{_fmt(link.value, facts.chain, asset)} received in "
                                             f"{link.in_txid} left in {link.out_txid} after {link.blocks} "
                                             f"blocks ({link.seconds // 60} minutes)")
                        for link in sorted(moved.links, key=lambda k: -k.value)]
            limits = (f"{max_blocks} blocks" if max_blocks is not None else "",
                      f"{max_minutes} minutes" if max_minutes is not None else "")
            window = " or ".join(w for w in limits if w)
            return FiredIndicator(d, f"{moved.ratio:.0%} of the {_fmt(total, facts.chain, asset)} received "
                                     f"left within {window} ({len(moved.links)} movements)",
                                  tuple(evidence[:MAX_EVIDENCE]), len(moved.links))
    return None


def _utxo_links(facts: AddressFacts, received_txids: set[str]) -> list[PassThrough]:
    rows = facts.store.con.execute(
        """SELECT o.txid, i.txid, o.value::HUGEINT, i.height - o.height, ts.time - tr.time
           FROM outputs o JOIN inputs i ON i.chain = o.chain AND i.prev_txid = o.txid AND i.prev_n = o.n
           JOIN txs tr ON tr.chain = o.chain AND tr.txid = o.txid AND tr.height = o.height
           JOIN txs ts ON ts.chain = i.chain AND ts.txid = i.txid AND ts.height = i.height
           WHERE o.chain = ? AND o.address_id = ?""", [facts.chain, facts.address_id]).fetchall()
    return [PassThrough(a, b, int(v), int(blocks), int(seconds)) for a, b, v, blocks, seconds in rows
            if a in received_txids]


def check_structuring(facts: AddressFacts, d: IndicatorDefinition) -> FiredIndicator | None:
    """Repeated payments just under the chain's reporting threshold."""
    thresholds: Mapping[str, Any] = d.param("thresholds", {}) or {}
    margin = float(d.param("margin", 0.1))
    min_count = int(d.param("min_count", 3))
    directions = _directions(d)
    for asset, (received, sent) in _payments(facts).items():
        key = facts.chain if asset == "native" else asset
        threshold = thresholds.get(key)
        if threshold is None:
            continue
        threshold = int(threshold)
        hits: list[tuple[str, Payment]] = []
        for direction, payments in (("received", received), ("sent", sent)):
            if direction in directions:
                hits += [(direction, p) for p in near_threshold(payments, threshold, margin)]
        if len(hits) >= min_count:
            evidence = [Evidence(kind="transaction", txid=p.txid, height=p.height, value=p.value, asset=asset,
                                 description=f"{direction} {_fmt(p.value, facts.chain, asset)} in {p.txid}, "
                                             f"{(threshold - p.value) / threshold:.1%} under the threshold")
                        for direction, p in sorted(hits, key=lambda h: (h[1].height, h[1].txid))]
            return FiredIndicator(d, f"{len(hits)} payments just under the threshold of "
                                     f"{_fmt(threshold, facts.chain, asset)} (within {margin:.0%})",
                                  tuple(evidence[:MAX_EVIDENCE]), len(hits))
    return None


def check_fresh_addresses(facts: AddressFacts, d: IndicatorDefinition) -> FiredIndicator | None:
    """The address pays many addresses in the very transaction where they first appear."""
    if facts.address_id is None:
        return None
    min_count = int(d.param("min_count", 5))
    min_share = float(d.param("min_share", 0.5))
    store, chain = facts.store, facts.chain
    if facts.params.is_utxo:
        rows = store.con.execute(
            """WITH me AS (SELECT unnest($self::BIGINT[]) AS id),
                    sx AS (SELECT DISTINCT txid, height FROM inputs WHERE chain = $c AND address_id = $x),
                    outs AS (SELECT o.txid, o.height, o.address_id, o.address, o.value FROM outputs o
                             JOIN sx USING (txid, height)
                             WHERE o.chain = $c AND o.address_id IS NOT NULL
                               AND o.address_id NOT IN (SELECT id FROM me)),
                    first AS (SELECT address_id, min(height) AS h FROM outputs
                              WHERE chain = $c AND address_id IN (SELECT address_id FROM outs) GROUP BY 1)
               SELECT o.txid, o.address, o.value::HUGEINT, o.height = f.h AND NOT EXISTS (
                        SELECT 1 FROM outputs e WHERE e.chain = $c AND e.address_id = o.address_id
                          AND e.height = o.height AND e.txid <> o.txid)
               FROM outs o JOIN first f USING (address_id)""",
            {"c": chain, "x": facts.address_id, "self": facts.self_ids}).fetchall()
    else:
        rows = store.con.execute(
            """WITH outs AS (SELECT txid, height, transfer_index, to_id, to_address, value FROM transfers
                             WHERE chain = $c AND from_id = $x AND to_id IS NOT NULL AND to_id <> $x
                               AND asset = 'native' AND value IS NOT NULL AND kind IN ('native', 'internal')),
                    first AS (SELECT id, min(height) AS h FROM (
                                SELECT to_id AS id, height FROM transfers WHERE chain = $c
                                  AND to_id IN (SELECT to_id FROM outs)
                                UNION ALL SELECT from_id, height FROM transfers WHERE chain = $c
                                  AND from_id IN (SELECT to_id FROM outs)) GROUP BY 1)
               SELECT o.txid, o.to_address, o.value::HUGEINT, o.height = f.h
               FROM outs o JOIN first f ON f.id = o.to_id""", {"c": chain, "x": facts.address_id}).fetchall()
    total = sum(int(r[2]) for r in rows)
    fresh = [(t, a, int(v)) for t, a, v, is_fresh in rows if is_fresh]
    fresh_value = sum(v for _, _, v in fresh)
    count = len({a for _, a, _ in fresh})
    if count < min_count or not total or fresh_value / total < min_share:
        return None
    evidence = [Evidence(kind="counterparty", txid=t, counterparty=a, value=v, asset="native",
                         description=f"paid {_fmt(v, chain)} to {a}, first seen in {t}")
                for t, a, v in sorted(fresh, key=lambda f: -f[2])]
    return FiredIndicator(d, f"paid {count} fresh addresses, {fresh_value / total:.0%} of what it sent",
                          tuple(evidence[:MAX_EVIDENCE]), count)


CHECKS: dict[str, Check] = {
    "sanctioned": check_sanctioned,
    "attribution": check_attribution,
    "exposure": check_exposure,
    "mixer": check_mixer,
    "conversion": check_conversion,
    "peel_chain": check_peel_chain,
    "rapid_movement": check_rapid_movement,
    "structuring": check_structuring,
    "fresh_addresses": check_fresh_addresses,
}
"""The checks an indicator may name, by name."""


# ------------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True, slots=True)
class RiskReport:
    """The assessment of an address with the facts shown next to it."""

    chain: str
    address: str
    assessment: RiskAssessment
    notes: tuple[str, ...]
    facts: AddressFacts

    def to_dict(self) -> dict[str, Any]:
        """The ``risk`` section of an address document."""
        return {**self.assessment.to_dict(), "notes": list(self.notes)}


def evaluate_address(store: ChainStore, chain: str, address: str, *,
                     catalogue: Mapping[str, IndicatorDefinition] | None = None,
                     home: Path | None = None, indicators_file: Path | None = None,
                     trace: bool = True) -> RiskReport:
    """Evaluate every enabled indicator of the catalogue on an address and assess its risk.

    ``trace`` false skips the indicators of indirect exposure (no tracing).
    """
    get_chain(chain)
    if catalogue is None:
        catalogue = load_catalogue(indicators_file, home=home)
    facts = AddressFacts(store, chain, canonical_or_given(chain, address), trace=trace)
    if facts.address_id is None:
        facts.notes.append("the address has no transactions in the store: only lists and tags were checked")
    if not has_table(store, "clusters") or facts.cluster is None:
        facts.notes.append("no cluster for the address: tags and exposure are for the address alone")
    fired = []
    for definition in catalogue.values():
        if not definition.enabled:
            continue
        result = CHECKS[definition.check](facts, definition)
        if result is not None:
            fired.append(result)
    return RiskReport(chain, facts.address, assess(fired), tuple(facts.notes), facts)


# ------------------------------------------------------------------------------------------------
# The sections of ``fundtrail address``


def address_sections(store: ChainStore, home: Path | None, chain: str, address: str, *,
                     indicators_file: Path | None = None, trace: bool = True) -> dict[str, Any]:
    """The cluster, tags, sanctions, exposure and risk sections of an address document."""
    report = evaluate_address(store, chain, address, home=home, indicators_file=indicators_file, trace=trace)
    facts = report.facts
    cluster = facts.cluster
    indirect = next(iter(facts._indirect.values()), None)
    return {
        "cluster": None if cluster is None else {"cluster_id": cluster[0], "size": cluster[1]},
        "tags": [{**t.to_dict(), "how": "cluster" if t.via_cluster else "direct"} for t in facts.tags],
        "sanctions": {"sanctioned": any(h.is_listed for h in facts.sanctions),
                      "matches": [h.to_dict() for h in facts.sanctions]},
        "exposure": exposure_document(facts.direct, indirect),
        "risk": report.to_dict(),
    }
