"""Generate a world: a seeded, Bitcoin-like economy with crimes in it, written with its ground truth.

A world is a run of blocks. The first ``COINBASE_MATURITY`` blocks hold only coinbases (the pools mine
before anyone can spend: all value has a source); then every block has its scheduled services (sweeps,
payouts, settlements, CoinJoin rounds and mixes), the typologies' next moves, and a Poisson number of
random honest actions. :func:`generate_world` streams the transactions and the address owners to files
as it goes, so memory stays bounded by the live coins and the entities, not by the chain's length.

Sizes: ``small`` (about 2,000 transactions, seconds), ``medium`` (about 25,000, the demo), ``large``
(about 1,000,000, benchmarks), or a number of transactions. The same seed and size give byte-identical
files; counts are approximate (the economy decides how many actions succeed).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fundtrail.domain.chains import get_chain
from fundtrail.errors import InputError
from fundtrail.scenarios import typologies, writer
from fundtrail.scenarios.dice import Dice
from fundtrail.scenarios.economy import Economy
from fundtrail.scenarios.groundtruth import (
    TRUTH_DIR,
    TRUTH_FILE,
    Entity,
    EntityKind,
    GroundTruth,
    Typology,
    TypologyKind,
)
from fundtrail.scenarios.keys import KeyFactory
from fundtrail.scenarios.ledger import COINBASE_MATURITY, Ledger
from fundtrail.scenarios.writer import ActorSpec, TagSpec

log = logging.getLogger(__name__)

SIZES: dict[str, int] = {"small": 2_000, "medium": 25_000, "large": 1_000_000}
"""Named sizes: about how many transactions."""

MIN_TXS = 300
MAX_TXS = 20_000_000

START_HEIGHT = 840_000
START_TIME = 1_713_571_767
SUBSIDY = 312_500_000

CATEGORIES = {
    EntityKind.EXCHANGE: "exchange",
    EntityKind.MINER: "miner",
    EntityKind.PAYMENT_PROCESSOR: "payment_processor",
    EntityKind.GAMBLING: "gambling",
    EntityKind.MARKET: "market",
    EntityKind.COINJOIN_COORDINATOR: "coinjoin",
}
"""TagPack category (GraphSense taxonomy concept) of each kind of service."""


def parse_size(size: str | int) -> tuple[str, int]:
    """(name, transactions) of a size: ``small``, ``medium``, ``large`` or a number of transactions."""
    if isinstance(size, int) or str(size).strip().isdigit():
        n = int(size)
        if not MIN_TXS <= n <= MAX_TXS:
            raise InputError(f"a world needs between {MIN_TXS} and {MAX_TXS} transactions, not {n}")
        return str(n), n
    name = str(size).strip().lower()
    if name not in SIZES:
        raise InputError(f"unknown size {size!r}; use {', '.join(SIZES)} or a number of transactions")
    return name, SIZES[name]


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


@dataclass(frozen=True, slots=True)
class WorldConfig:
    """Everything that decides a world; the same config gives the same files."""

    seed: int
    size: str
    target_txs: int
    users: int
    merchants: int
    exchanges: int
    pools: int
    active_blocks: int
    ransomware: int
    thefts: int
    victims: int
    chain: str = "btc"
    compress: bool = False

    @classmethod
    def for_size(
        cls, size: str | int, seed: int, *, chain: str = "btc", compress: bool = False
    ) -> WorldConfig:
        """The config of a named size (or a number of transactions) and seed."""
        if seed < 0:
            raise InputError(f"the seed must be >= 0, not {seed}")
        name, target = parse_size(size)
        params = get_chain(chain)
        if not params.segwit or not params.bech32_hrp:
            raise InputError(f"worlds are generated for Bitcoin-like chains with segwit, not {params.name}")
        chain = params.name
        return cls(
            seed=seed,
            size=name,
            target_txs=target,
            users=_clamp(target // 14, 60, 80_000),
            merchants=_clamp(target // 300, 8, 2_000),
            exchanges=6 if target < 10_000 else 8 if target < 200_000 else 12,
            pools=3 if target < 10_000 else 5,
            active_blocks=_clamp(target // 120, 80, 6_000),
            ransomware=1 + target // 250_000,
            thefts=1 + target // 500_000,
            victims=_clamp(5 + target // 5_000, 5, 14),
            chain=chain,
            compress=compress,
        )

    @property
    def pace(self) -> int:
        """Blocks a typology waits between steps, at most (longer worlds play out slower)."""
        return max(1, self.active_blocks // 80)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "seed": self.seed,
            "size": self.size,
            "target_txs": self.target_txs,
            "users": self.users,
            "merchants": self.merchants,
            "exchanges": self.exchanges,
            "pools": self.pools,
            "active_blocks": self.active_blocks,
            "ransomware": self.ransomware,
            "thefts": self.thefts,
            "victims": self.victims,
            "chain": self.chain,
            "compress": self.compress,
        }


@dataclass(frozen=True)
class WorldSummary:
    """What :func:`generate_world` wrote."""

    config: WorldConfig
    out_dir: Path
    transactions: int
    blocks: int
    heights: tuple[int, int]
    addresses: int
    entities: int
    coinjoins: dict[str, int]
    typologies: tuple[Typology, ...]
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (paths as text, amounts as strings)."""
        return {
            "out": str(self.out_dir),
            "config": self.config.to_dict(),
            "transactions": self.transactions,
            "blocks": self.blocks,
            "heights": list(self.heights),
            "addresses": self.addresses,
            "entities": self.entities,
            "coinjoins": self.coinjoins,
            "typologies": [
                {
                    "id": t.id,
                    "kind": t.kind.value,
                    "label": t.label,
                    "complete": t.complete,
                    "victims": len(t.victims),
                    "proceeds": str(t.proceeds),
                    "cash_outs": len(t.cash_outs),
                    "cashed_out": str(t.cashed_out),
                    "exchanges": sorted({c.exchange_name for c in t.cash_outs}),
                    "jurisdictions": sorted({c.jurisdiction or "" for c in t.cash_outs}),
                }
                for t in self.typologies
            ],
            "files": {k: str(v) for k, v in self.files.items()},
            "seconds": round(self.seconds, 2),
        }


class Scheduler:
    """Resumes typology processes at the block they asked for, in a fixed order."""

    def __init__(self) -> None:
        self._queue: list[tuple[int, int, Iterator[int]]] = []
        self._seq = 0

    def spawn(self, at: int, process: Iterator[int]) -> None:
        """Start ``process`` at block ``at`` (counting active blocks from 0)."""
        heapq.heappush(self._queue, (at, self._seq, process))
        self._seq += 1

    def run(self, block: int) -> None:
        """Run every process due at ``block`` until it yields a wait."""
        while self._queue and self._queue[0][0] <= block:
            _, seq, process = heapq.heappop(self._queue)
            try:
                wait = next(process)
            except StopIteration:
                continue
            heapq.heappush(self._queue, (block + max(1, int(wait)), seq, process))

    @property
    def pending(self) -> int:
        """Processes not finished."""
        return len(self._queue)


ProgressFn = Callable[[int, int], None]
"""``on_progress(blocks_done, blocks_total)``."""


def generate_world(
    config: WorldConfig, out_dir: Path, *, on_progress: ProgressFn | None = None
) -> WorldSummary:
    """Generate the world of ``config`` into ``out_dir`` (created; files there are replaced)."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = get_chain(config.chain)
    dice = Dice(config.seed)
    suffix = ".gz" if config.compress else ""
    tx_path = out_dir / (writer.TRANSACTIONS + suffix)
    addresses_name = "addresses.jsonl" + suffix
    owners = writer.AddressOwners(out_dir / TRUTH_DIR / addresses_name, config.compress)
    txs_out = writer.JsonLinesWriter(tx_path, config.compress)
    try:
        keys = KeyFactory(params, dice, owners)
        ledger = Ledger(
            dice,
            txs_out.write_rows,
            start_height=START_HEIGHT,
            prev_hash=dice.bytes(32).hex(),
            subsidy=SUBSIDY,
        )
        entities: list[Entity] = []
        eco = Economy(
            dice,
            keys,
            ledger,
            n_users=config.users,
            n_merchants=config.merchants,
            n_exchanges=config.exchanges,
            n_pools=config.pools,
            on_entity=entities.append,
        )
        records = _plan_typologies(eco, config)
        total_blocks = COINBASE_MATURITY + config.active_blocks
        clock = START_TIME
        pool_shares = [p.share for p in eco.pools]
        for i in range(COINBASE_MATURITY):
            clock += 1 + int(dice.exponential(600))
            ledger.begin_block(START_HEIGHT + i, clock, 1.0)
            pool = dice.weighted(eco.pools, pool_shares)
            ledger.end_block(pool.wallet, pool.wallet.static[0], pool.tag)
            if on_progress and i % 20 == 0:
                on_progress(i, total_blocks)
        scheduler = Scheduler()
        for start, process in records[1]:
            scheduler.spawn(start, process)
        rate = _background_rate(config)
        for b in range(config.active_blocks):
            clock += 1 + int(dice.exponential(600))
            ledger.begin_block(
                START_HEIGHT + COINBASE_MATURITY + b, clock, min(80.0, max(1.0, dice.lognormal(6.0, 0.5)))
            )
            eco.services(b, wasabi_every=4)
            scheduler.run(b)
            eco.background(dice.poisson(rate))
            pool = dice.weighted(eco.pools, pool_shares)
            ledger.end_block(pool.wallet, pool.wallet.static[0], pool.tag)
            if on_progress and (b % 10 == 0 or b == config.active_blocks - 1):
                on_progress(COINBASE_MATURITY + b + 1, total_blocks)
        eco.finish()
    finally:
        txs_out.close()
        owners.close()
    built = tuple(r.build() for r in records[0])
    for t in built:
        if not t.complete:
            log.warning("typology %s did not finish before the world ended", t.id)
    heights = (START_HEIGHT, ledger.height)
    truth = GroundTruth(
        seed=config.seed,
        size=config.size,
        chain=params.name,
        entities=tuple(entities),
        coinjoins={k: tuple(v) for k, v in eco.coinjoins.items()},
        peel_chains=tuple(eco.peel_chains),
        payjoins=tuple(eco.payjoins),
        typologies=built,
        transactions=ledger.tx_count,
        blocks=ledger.block_count,
        heights=heights,
        addresses_file=addresses_name,
    )
    truth_file = out_dir / TRUTH_DIR / TRUTH_FILE
    writer.write_truth(truth_file, truth)
    tag_files = _write_tags(eco, config, out_dir, built, writer.world_date(clock), params.symbol)
    files = {
        "transactions": tx_path,
        "truth": truth_file,
        "addresses": owners.out.path,
        **{"actorpack" if ".actorpack." in p.name else "tagpack:" + p.stem: p for p in tag_files},
    }
    manifest = writer.write_manifest(
        out_dir,
        {
            "seed": config.seed,
            "size": config.size,
            "chain": params.name,
            "transactions": ledger.tx_count,
            "blocks": ledger.block_count,
            "heights": list(heights),
            "config": config.to_dict(),
        },
        list(files.values()),
    )
    files["manifest"] = manifest
    summary = WorldSummary(
        config,
        out_dir,
        ledger.tx_count,
        ledger.block_count,
        heights,
        keys.issued,
        len(entities),
        {k.value: len(v) for k, v in eco.coinjoins.items()},
        built,
        files,
        time.perf_counter() - started,
    )
    log.info(
        "world seed %d size %s: %d transactions in %d blocks, %d addresses, in %.1fs",
        config.seed,
        config.size,
        summary.transactions,
        summary.blocks,
        summary.addresses,
        summary.seconds,
    )
    return summary


def _background_rate(config: WorldConfig) -> float:
    """Random actions per block so that the world lands near its target number of transactions."""
    per_block = (config.target_txs - COINBASE_MATURITY) / config.active_blocks
    scheduled = 1 + config.exchanges / 3 + config.pools / 2 + 1.5  # coinbase, sweeps, payouts, services
    return max(1.0, (per_block - scheduled) / 0.85)


def _plan_typologies(
    eco: Economy, config: WorldConfig
) -> tuple[list[typologies.TypologyRecord], list[tuple[int, Iterator[int]]]]:
    records: list[typologies.TypologyRecord] = []
    processes: list[tuple[int, Iterator[int]]] = []
    n = config.active_blocks
    until = START_HEIGHT + COINBASE_MATURITY + int(n * 0.88)
    for k in range(config.ransomware):
        record = typologies.new_record(eco, TypologyKind.RANSOMWARE, k + 1)
        start = int(n * (0.2 + 0.25 * k / max(1, config.ransomware)))
        records.append(record)
        processes.append(
            (start, typologies.ransomware(eco, record, victims=config.victims, pace=config.pace, until=until))
        )
    for k in range(config.thefts):
        record = typologies.new_record(eco, TypologyKind.THEFT, k + 1)
        start = int(n * (0.3 + 0.25 * k / max(1, config.thefts)))
        records.append(record)
        processes.append((start, typologies.theft(eco, record, pace=config.pace, until=until)))
    return records, processes


def _write_tags(
    eco: Economy, config: WorldConfig, out_dir: Path, built: tuple[Typology, ...], lastmod: Any, currency: str
) -> list[Path]:
    """Write the ActorPack and the TagPacks; returns their paths."""
    dice = eco.dice
    folder = out_dir / writer.TAGPACK_DIR
    source = f"urn:fundtrail:scenario:{config.seed}:{config.size}"
    services = [e for e in eco.entities if e.kind in CATEGORIES]
    actors = [ActorSpec(e.actor or "", e.name, CATEGORIES[e.kind], e.jurisdiction) for e in services]
    actor_file = folder / writer.ACTORPACK
    writer.write_actorpack(actor_file, actors, lastmod=lastmod, seed=config.seed)
    exchange_tags: list[TagSpec] = []
    for ex in eco.exchanges:
        actor = ex.entity.actor
        exchange_tags += [TagSpec(k.address, f"{ex.name} hot wallet", actor) for k in ex.hot.static]
        exchange_tags += [TagSpec(k.address, f"{ex.name} cold wallet", actor) for k in ex.cold.static]
        swept = list(ex.swept.values())
        for key in dice.sample(swept, max(1, len(swept) // 30)) if swept else []:
            exchange_tags.append(
                TagSpec(
                    key.address,
                    f"{ex.name} deposit address",
                    actor,
                    confidence="manual_transaction",
                    is_cluster_definer=False,
                )
            )
    exchanges_file = folder / "exchanges.yaml"
    writer.write_tagpack(
        exchanges_file,
        title=f"Exchange wallets (generated world {config.seed})",
        description="Hot and cold wallets of the world's exchanges, and deposit addresses "
        "learnt from test deposits.",
        currency=currency,
        confidence="service_data",
        lastmod=lastmod,
        source=source,
        tags=exchange_tags,
        category="exchange",
        is_cluster_definer=True,
    )
    service_tags: list[TagSpec] = []
    for pool in eco.pools:
        service_tags += [
            TagSpec(k.address, f"{pool.entity.name} payout address", pool.entity.actor, "miner")
            for k in pool.wallet.static
        ]
    for svc in (eco.processor, eco.casino, eco.market):
        category = CATEGORIES[svc.entity.kind]
        service_tags += [
            TagSpec(k.address, f"{svc.name} hot wallet", svc.entity.actor, category) for k in svc.hot.static
        ]
    services_file = folder / "services.yaml"
    writer.write_tagpack(
        services_file,
        title=f"Services (generated world {config.seed})",
        description="Mining pools, the payment processor, the casino and the market.",
        currency=currency,
        confidence="service_data",
        lastmod=lastmod,
        source=source,
        tags=service_tags,
        is_cluster_definer=True,
    )
    mixer_tags = [
        TagSpec(c.wallet.static[0].address, f"{c.entity.name} fee address", c.entity.actor)
        for c in (eco.wasabi, eco.whirlpool)
    ]
    mixers_file = folder / "mixers.yaml"
    writer.write_tagpack(
        mixers_file,
        title=f"CoinJoin coordinators (generated world {config.seed})",
        description="Addresses collecting CoinJoin coordinator and pool fees.",
        currency=currency,
        confidence="forensic",
        lastmod=lastmod,
        source=source,
        tags=mixer_tags,
        category="coinjoin",
        is_cluster_definer=True,
    )
    report_tags: list[TagSpec] = []
    for t in built:
        if t.kind is TypologyKind.RANSOMWARE:
            report_tags += [
                TagSpec(v.address, f"{t.label} ransom address", abuse="ransomware")
                for v in t.victims
                if dice.chance(0.7)
            ]
        else:
            report_tags += (
                [
                    TagSpec(
                        a, f"{t.label}: theft from {eco_name(eco, t.victims[0].entity)}", abuse="service_hack"
                    )
                    for a in t.seed_addresses[:1]
                ]
                if t.victims
                else []
            )
    reports_file = folder / "reports.yaml"
    writer.write_tagpack(
        reports_file,
        title=f"Victim reports (generated world {config.seed})",
        description="Addresses named in victims' reports to the police.",
        currency=currency,
        confidence="forensic_investigation",
        lastmod=lastmod,
        source=source,
        tags=report_tags,
    )
    return [actor_file, exchanges_file, services_file, mixers_file, reports_file]


def eco_name(eco: Economy, entity_id: str) -> str:
    """The name of an entity of the economy."""
    for e in eco.entities:
        if e.id == entity_id:
            return e.name
    return entity_id


__all__ = ["SIZES", "WorldConfig", "WorldSummary", "generate_world", "parse_size"]
