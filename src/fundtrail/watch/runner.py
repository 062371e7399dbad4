"""``watch run``: ingest what is new from a source, evaluate the watches it touches, raise and deliver alerts.

One cycle: (1) the source's new blocks go into the chain store through the ingest service (a node through
the reorg-aware loop, an export folder file by file, each file once); (2) for each chain with watches,
the blocks after the evaluation cursor are matched against the watch index and the touched watches (and
any watch never evaluated) are traced again; (3) their new alerts, the watches' new frontier and the
cursor are committed in one case-database transaction, so that a watcher killed at any point resumes from
the last committed block and raises no alert twice (alert keys are unique); (4) undelivered alerts go out
(webhook, email, the partner that shared the watch), each marked once delivered.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import and_, or_, select

from fundtrail.cases.context import Context, open_operation
from fundtrail.domain.chains import ChainFamily, get_chain
from fundtrail.errors import FundTrailError, InputError
from fundtrail.store.chainstore import ChainStore
from fundtrail.store.ingest import IngestReport, ingest_batches, ingest_from_source
from fundtrail.watch.delivery import DeliverySettings, send_email, send_webhook, webhook_secret
from fundtrail.watch.engine import WATCH_TRACE, Finding, Point, WatchIndex, evaluate
from fundtrail.watch.models import Watch, WatchAlert, WatchCursor, WatchPoint
from fundtrail.watch.service import alert_doc, raise_alerts

log = logging.getLogger(__name__)

EVALUATION = "store"
"""The cursor source of evaluation (how far the chain store's blocks were evaluated)."""
REORG_WINDOW = 100
"""Blocks evaluated again when the block under the cursor was replaced (a reorg)."""
UTXO_SUFFIXES = (".json", ".jsonl", ".gz")
BLOCK_SUFFIXES = (".dat", ".blk", ".block", ".bin")


class Source(Protocol):
    """Where new chain data comes from (a node, an export folder, a file)."""

    name: str

    def ingest(self, store: ChainStore, ctx_factory: Callable[[], Any]) -> list[IngestReport]:
        """Write what is new into the store."""
        ...


@dataclass
class NodeSource:
    """A node's JSON-RPC (Bitcoin Core-style or Ethereum), followed with the reorg-aware ingest loop."""

    url: str
    chain: str
    start: int | None = None
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.chain = get_chain(self.chain).name
        self.name = f"rpc:{self.chain}"

    def ingest(self, store: ChainStore, ctx_factory: Callable[[], Any]) -> list[IngestReport]:
        """Read the blocks after the store's tip (re-reading the tip, so a replaced tip is noticed)."""
        if get_chain(self.chain).family is ChainFamily.UTXO:
            from fundtrail.chains.bitcoin.rpc import BitcoinRpcSource as Rpc
        else:
            from fundtrail.chains.evm.rpc import EthereumRpcSource as Rpc  # type: ignore[assignment]
        node = Rpc(self.url, self.chain)
        try:
            tip = node.tip()
            stored = store.tip(self.chain)
            start = stored if stored is not None else (self.start if self.start is not None else 0)
            if start > tip:
                return []
            return [ingest_from_source(store, node, start, tip)]
        finally:
            close = getattr(node, "close", None)
            if close is not None:
                close()


@dataclass
class ExportSource:
    """Export files dropped in a folder (or one file): each new or changed file is ingested once."""

    path: Path
    chain: str
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.chain = get_chain(self.chain).name
        self.path = Path(self.path)
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file or folder")
        self.name = f"files:{self.path.resolve()}"
        if not self.exports():
            raise InputError(
                f"{self.path}: no export files (bitcoin-etl .json/.jsonl/.gz, raw blocks .dat, "
                f"or ethereum-etl folders with transactions.csv)"
            )

    def exports(self) -> list[Path]:
        """The export files (UTXO chains) or ethereum-etl folders (account chains), in name order."""
        utxo = get_chain(self.chain).family is ChainFamily.UTXO
        if self.path.is_file():
            return [self.path] if utxo and self.path.name.endswith(UTXO_SUFFIXES + BLOCK_SUFFIXES) else []
        if utxo:
            return sorted(
                p
                for p in self.path.iterdir()
                if p.is_file() and p.name.endswith(UTXO_SUFFIXES + BLOCK_SUFFIXES)
            )
        folders = [self.path] if (self.path / "transactions.csv").is_file() else []
        return folders + sorted(
            p for p in self.path.iterdir() if p.is_dir() and (p / "transactions.csv").is_file()
        )

    @staticmethod
    def fingerprint(path: Path) -> str:
        """Name, size and modification time of a file (or a folder's files): changes when it is replaced."""
        files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
        text = "|".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
        return hashlib.sha256(text.encode()).hexdigest()

    def ingest(self, store: ChainStore, ctx_factory: Callable[[], Any]) -> list[IngestReport]:
        """Ingest the files not ingested before (recorded as cursors of the case database)."""
        reports = []
        for path in self.exports():
            key, mark = f"file:{path.resolve()}", self.fingerprint(path)
            with ctx_factory() as ctx:
                done = _cursor(ctx, key, self.chain)
                if done is not None and done.block_hash == mark:
                    continue
            reports.append(ingest_batches(store, self.chain, self._read(path, store)))
            with ctx_factory() as ctx:
                _set_cursor(ctx, key, self.chain, 0, mark)
        return reports

    def _read(self, path: Path, store: ChainStore) -> Iterator[Any]:
        if get_chain(self.chain).family is not ChainFamily.UTXO:
            from fundtrail.chains.evm.etl import read_ethereum_etl

            return read_ethereum_etl(path, self.chain)
        if path.name.endswith(BLOCK_SUFFIXES):
            from fundtrail.chains.bitcoin.raw import read_block_files

            return read_block_files([path], self.chain, known_height=lambda h: store.height_of(self.chain, h))
        from fundtrail.chains.bitcoin.etl import read_bitcoin_etl

        return read_bitcoin_etl([path], self.chain)


def make_source(text: str, chain: str, start: int | None = None) -> Source:
    """A source from ``--source``: an http(s) URL is a node, anything else a file or folder."""
    if text.startswith(("http://", "https://")):
        return NodeSource(text, chain, start)
    return ExportSource(Path(text), chain)


def _cursor(ctx: Context, source: str, chain: str) -> WatchCursor | None:
    return ctx.session.execute(
        select(WatchCursor).where(WatchCursor.source == source, WatchCursor.chain == chain)
    ).scalar_one_or_none()


def _set_cursor(ctx: Context, source: str, chain: str, height: int, block_hash: str | None) -> None:
    row = _cursor(ctx, source, chain)
    if row is None:
        ctx.session.add(
            WatchCursor(source=source, chain=chain, height=height, block_hash=block_hash, updated_at=ctx.now)
        )
    else:
        row.height, row.block_hash, row.updated_at = height, block_hash, ctx.now
    ctx.session.flush()


@dataclass
class CycleReport:
    """What one cycle did."""

    ingested: list[dict[str, Any]] = field(default_factory=list)
    evaluated: dict[str, dict[str, int]] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    delivered: dict[str, int] = field(default_factory=lambda: {"webhook": 0, "email": 0, "partner": 0})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "ingested": self.ingested,
            "evaluated": self.evaluated,
            "alerts": self.alerts,
            "delivered": self.delivered,
        }


@dataclass
class Watcher:
    """Runs cycles over one home: ingest, evaluate, raise, deliver."""

    home: Path
    username: str | None = None
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    clients: Any = None
    """The partner-client factory (:data:`fundtrail.sharing.partners.ClientFactory`); tests inject theirs."""
    on_alert: Callable[[WatchAlert], None] | None = None

    def operation(self) -> Any:
        """One case-database operation as the watcher's user (or the system)."""
        return open_operation(self.home, self.username, user_required=False)

    def cycle(self, source: Source | None = None, store: ChainStore | None = None) -> CycleReport:
        """One cycle; ``store`` is an open chain store (else the home's is opened for the cycle)."""
        report = CycleReport()
        if store is None:
            with ChainStore.open_home(self.home) as opened:
                self._cycle(opened, source, report)
        else:
            self._cycle(store, source, report)
        self.deliver(report)
        return report

    def _cycle(self, store: ChainStore, source: Source | None, report: CycleReport) -> None:
        if source is not None:
            report.ingested = [r.as_dict() for r in source.ingest(store, self.operation)]
        with self.operation() as ctx:
            chains = sorted(
                set(ctx.session.execute(select(Watch.chain).where(Watch.active.is_(True))).scalars())
            )
        for chain in chains:
            self.evaluate_chain(store, chain, report)

    def evaluate_chain(self, store: ChainStore, chain: str, report: CycleReport) -> None:
        """Evaluate the blocks of ``chain`` after the cursor, and the watches never evaluated; commit."""
        tip = store.tip(chain)
        with self.operation() as ctx:
            cursor = _cursor(ctx, EVALUATION, chain)
            low = tip + 1 if tip is not None else 0
            if cursor is not None:
                low = cursor.height + 1
                if cursor.height >= 0 and store.block_hash(chain, cursor.height) != cursor.block_hash:
                    log.warning(
                        "%s: the block under the watch cursor (%d) was replaced; evaluating the last "
                        "%d blocks again",
                        chain,
                        cursor.height,
                        REORG_WINDOW,
                    )
                    low = max(0, cursor.height - REORG_WINDOW)
            rows = ctx.session.execute(
                select(
                    WatchPoint.watch_id, WatchPoint.address, WatchPoint.txid, WatchPoint.n, Watch.evaluated
                )
                .join(Watch)
                .where(Watch.active.is_(True), Watch.chain == chain)
            ).all()
            index = WatchIndex(chain)
            targets: dict[int, list[Point]] = {}
            fresh: set[int] = set()
            for watch_id, address, txid, n, evaluated in rows:
                index.add(watch_id, Point(chain, address, txid, n))
                if not evaluated:
                    fresh.add(watch_id)
            target_rows = ctx.session.execute(
                select(WatchPoint.watch_id, WatchPoint.address, WatchPoint.txid, WatchPoint.n)
                .join(Watch)
                .where(Watch.active.is_(True), Watch.chain == chain, WatchPoint.origin == "target")
            ).all()
            for watch_id, address, txid, n in target_rows:
                targets.setdefault(watch_id, []).append(Point(chain, address, txid, n))
            touched = index.touched(store, low, tip) if tip is not None and low <= tip else {}
            todo = sorted(set(touched) | fresh)
            findings: list[Finding] = []
            frontier: dict[int, set[str]] = {}
            for watch_id in todo:
                result = evaluate(store, chain, watch_id, targets.get(watch_id, []), WATCH_TRACE)
                findings += result.findings
                frontier[watch_id] = result.reached
            for watch_id, reached in frontier.items():
                self._set_frontier(ctx, watch_id, chain, reached)
            raised = raise_alerts(ctx, findings)
            if tip is not None:
                _set_cursor(ctx, EVALUATION, chain, tip, store.block_hash(chain, tip))
            if todo or raised:
                ctx.audit(
                    "watch.run",
                    "watch",
                    None,
                    details={
                        "chain": chain,
                        "from": low,
                        "to": tip,
                        "watches": len(todo),
                        "alerts": [a.id for a in raised],
                    },
                )
            report.evaluated[chain] = {
                "from": low,
                "to": tip if tip is not None else -1,
                "watches": len(todo),
                "points": len(index),
            }
            report.alerts += [alert_doc(a, self.home) for a in raised]
        if self.on_alert is not None:
            for alert in raised:
                self.on_alert(alert)

    @staticmethod
    def _set_frontier(ctx: Context, watch_id: int, chain: str, reached: set[str]) -> None:
        watch = ctx.session.get(Watch, watch_id)
        if watch is None:
            return
        watch.evaluated = True
        targets = {p.address for p in watch.points if p.origin == "target"}
        keep = reached - targets
        for point in [p for p in watch.points if p.origin == "reached" and p.address not in keep]:
            watch.points.remove(point)
        have = {p.address for p in watch.points if p.origin == "reached"}
        for address in sorted(keep - have):
            watch.points.append(WatchPoint(chain=chain, address=address, txid="", n=-1, origin="reached"))
        ctx.session.flush()

    # ------------------------------------------------------------------------------------ delivery

    def deliver(self, report: CycleReport) -> None:
        """Send every alert not yet delivered (webhook, email, the partner behind a shared watch)."""
        conditions: list[Any] = [and_(WatchAlert.partner_at.is_(None), Watch.source == "partner")]
        if self.delivery.webhook:
            conditions.append(WatchAlert.webhook_at.is_(None))
        if self.delivery.smtp and self.delivery.email_to:
            conditions.append(WatchAlert.email_at.is_(None))
        with self.operation() as ctx:
            pending = [
                (a.id, alert_doc(a, self.home), a.watch.source == "partner")
                for a in ctx.session.execute(
                    select(WatchAlert).join(Watch).where(or_(*conditions)).order_by(WatchAlert.id)
                ).scalars()
            ]
        if not pending:
            return
        secret = webhook_secret(self.home) if self.delivery.webhook else b""
        for alert_id, doc, from_partner in pending:
            done: dict[str, bool] = {}
            if self.delivery.webhook and doc["delivered"]["webhook"] is None:
                done["webhook"] = send_webhook(self.delivery, secret, doc)
            if self.delivery.smtp and self.delivery.email_to and doc["delivered"]["email"] is None:
                done["email"] = send_email(self.delivery, doc)
            if from_partner and doc["delivered"]["partner"] is None:
                done["partner"] = self._tell_partner(alert_id)
            sent = [k for k, ok in done.items() if ok]
            if not sent:
                continue
            with self.operation() as ctx:
                alert = ctx.session.get(WatchAlert, alert_id)
                if alert is None:
                    continue
                for channel in sent:
                    setattr(alert, f"{channel}_at", ctx.now)
                    report.delivered[channel] += 1
                ctx.audit(
                    "alert.deliver",
                    "watch_alert",
                    alert_id,
                    case=alert.watch.case.number if alert.watch.case else None,
                    details={"channels": sent},
                )

    def _tell_partner(self, alert_id: int) -> bool:
        from fundtrail.watch.sharing import notify_partner

        try:
            with self.operation() as ctx:
                notify_partner(ctx, alert_id, clients=self.clients)
            return True
        except FundTrailError as error:
            log.warning("alert %d: the partner was not told: %s", alert_id, error)
            return False


def follow(
    watcher: Watcher,
    source: Source | None,
    *,
    interval: float,
    cycles: int | None = None,
    on_cycle: Callable[[CycleReport], None] | None = None,
) -> None:
    """Run cycles until stopped (Ctrl-C, SIGTERM) or ``cycles`` are done; ``interval`` seconds apart."""
    done = 0
    while cycles is None or done < cycles:
        started = time.monotonic()
        report = watcher.cycle(source)
        if on_cycle is not None:
            on_cycle(report)
        done += 1
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
