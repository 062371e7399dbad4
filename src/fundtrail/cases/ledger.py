"""The recovery ledger: amounts frozen, seized, forfeited and returned, and the public aggregate report.

Each entry is an exact integer of base units with its chain and asset, the jurisdiction where it
happened, and the legal basis behind it: a request of the case, or a court order (one is required).
The public report aggregates per kind, chain, asset and jurisdiction; it holds no personal data and no
addresses (only counts of cases and entries, and sums).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from fundtrail.cases.cases import touch_added
from fundtrail.cases.context import Context, case_logger
from fundtrail.cases.models import LedgerEntry
from fundtrail.cases.requests import get_request
from fundtrail.domain.cases import Action, LedgerKind, format_amount, normalise_jurisdiction, parse_amount
from fundtrail.domain.chains import CHAINS, NATIVE_ASSET, get_chain
from fundtrail.errors import InputError


def record_entry(
    ctx: Context,
    number: str,
    kind: str,
    chain: str,
    amount: int | str,
    *,
    asset: str = NATIVE_ASSET,
    jurisdiction: str | None = None,
    holder: str | None = None,
    request: str | None = None,
    court_order: str | None = None,
    note: str | None = None,
) -> LedgerEntry:
    """Record an amount on a case; needs the request or the court order behind it."""
    case = ctx.case(number, Action.RECORD_RECOVERY)
    try:
        kind_ = LedgerKind(kind.strip().lower())
    except ValueError:
        raise InputError(
            f"unknown ledger kind {kind!r}; kinds: {', '.join(k.value for k in LedgerKind)}"
        ) from None
    chain_ = get_chain(chain).name
    value = parse_amount(amount)
    if value == 0:
        raise InputError("a ledger amount must be more than 0")
    if not request and not (court_order and court_order.strip()):
        raise InputError("a ledger entry needs its legal basis: --request NUMBER or --court-order REFERENCE")
    req = None
    if request:
        req = get_request(ctx, request)
        if req.case_id != case.id:
            raise InputError(f"request {req.number} is not a request of case {case.number}")
    entry = LedgerEntry(
        case_id=case.id,
        kind=kind_.value,
        chain=chain_,
        asset=(asset or NATIVE_ASSET).strip().lower(),
        amount=value,
        jurisdiction=normalise_jurisdiction(jurisdiction or case.jurisdiction),
        holder=holder,
        request_id=req.id if req else None,
        court_order=court_order.strip() if court_order else None,
        note=note,
        recorded_by_id=ctx.acting_user.id,
        recorded_at=ctx.now,
    )
    ctx.session.add(entry)
    touch_added(ctx, case)  # entries of one case recorded at once must not conflict with each other
    ctx.session.flush()
    ctx.audit(
        "ledger.record",
        "ledger_entry",
        entry.id,
        case=case.number,
        details={
            "kind": entry.kind,
            "chain": entry.chain,
            "asset": entry.asset,
            "amount": str(value),
            "jurisdiction": entry.jurisdiction,
            "request": req.number if req else None,
            "court_order": entry.court_order,
        },
    )
    case_logger(__name__, case.number).info("ledger: %s %s %s", kind_.value, value, chain_)
    return entry


def entry_doc(e: LedgerEntry) -> dict[str, Any]:
    """A ledger entry as JSON values (amount as a string)."""
    return {
        "id": e.id,
        "case": e.case.number,
        "kind": e.kind,
        "chain": e.chain,
        "asset": e.asset,
        "amount": str(e.amount),
        "jurisdiction": e.jurisdiction,
        "holder": e.holder,
        "request": e.request.number if e.request else None,
        "court_order": e.court_order,
        "note": e.note,
        "recorded_at": e.recorded_at,
    }


def list_entries(ctx: Context, number: str) -> list[LedgerEntry]:
    """The ledger of a case."""
    case = ctx.case(number, Action.READ_RECOVERY)
    ctx.audit("ledger.read", "case", case.number, case=case.number)
    return list(
        ctx.session.execute(
            select(LedgerEntry).where(LedgerEntry.case_id == case.id).order_by(LedgerEntry.id)
        ).scalars()
    )


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One line of the public report: a total per kind, chain, asset and jurisdiction."""

    kind: str
    chain: str
    asset: str
    jurisdiction: str
    amount: int
    cases: int
    entries: int

    @property
    def display(self) -> str:
        """The amount in coins (native assets), else in base units."""
        params = CHAINS.get(self.chain)
        if params is not None and self.asset == NATIVE_ASSET:
            return f"{format_amount(self.amount, params.decimals)} {params.symbol}"
        return f"{self.amount} base units"

    def to_dict(self) -> dict[str, Any]:
        """As JSON values (amount as a string)."""
        return {
            "kind": self.kind,
            "chain": self.chain,
            "asset": self.asset,
            "jurisdiction": self.jurisdiction,
            "amount": str(self.amount),
            "amount_display": self.display,
            "cases": self.cases,
            "entries": self.entries,
        }


def recovery_report(ctx: Context) -> list[ReportRow]:
    """The public aggregate: totals per kind, chain, asset and jurisdiction over every case."""
    ctx.require(Action.READ_RECOVERY)
    sums: dict[tuple[str, str, str, str], int] = defaultdict(int)
    cases: dict[tuple[str, str, str, str], set[int]] = defaultdict(set)
    entries: dict[tuple[str, str, str, str], int] = defaultdict(int)
    rows = ctx.session.execute(
        select(
            LedgerEntry.kind,
            LedgerEntry.chain,
            LedgerEntry.asset,
            LedgerEntry.jurisdiction,
            LedgerEntry.amount,
            LedgerEntry.case_id,
        )
    ).all()
    for kind, chain, asset, jur, amount, case_id in rows:
        key = (kind, chain, asset, jur)
        sums[key] += amount  # exact integers: summed in Python, never in floating point
        cases[key].add(case_id)
        entries[key] += 1
    order = {k.value: i for i, k in enumerate(LedgerKind)}
    report = [
        ReportRow(k[0], k[1], k[2], k[3], sums[k], len(cases[k]), entries[k])
        for k in sorted(sums, key=lambda k: (k[1], k[2], k[3], order.get(k[0], 99)))
    ]
    ctx.audit("report.recovery", "report", details={"rows": len(report)})
    return report


def write_chart(report: list[ReportRow], out: Path) -> list[Path]:
    """A bar chart of the report (per chain and asset, kinds side by side) as PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    groups = sorted({(r.chain, r.asset) for r in report})
    kinds = [k.value for k in LedgerKind]
    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(4.5 * max(1, len(groups)), 4), squeeze=False)
    for ax, (chain, asset) in zip(axes[0], groups or [("", "")], strict=False):
        params = CHAINS.get(chain)
        scale = 10**params.decimals if params is not None and asset == NATIVE_ASSET else 1
        unit = params.symbol if params is not None and asset == NATIVE_ASSET else "base units"
        values = []
        for kind in kinds:
            total = sum(r.amount for r in report if (r.chain, r.asset, r.kind) == (chain, asset, kind))
            values.append(total / scale)  # a float for drawing only; the report keeps exact integers
        ax.bar(kinds, values, color=["#4C72B0", "#DD8452", "#C44E52", "#55A868"])
        ax.set_title(f"{chain} {asset}" if chain else "no recoveries yet")
        ax.set_ylabel(unit)
        ax.tick_params(axis="x", rotation=20)
    fig.suptitle("Recovered crypto assets (public aggregate)")
    fig.tight_layout()
    paths = [out / "recovery.png", out / "recovery.svg"]
    fig.savefig(paths[0], dpi=120)
    fig.savefig(paths[1], metadata={"Date": None})
    plt.close(fig)
    return paths
