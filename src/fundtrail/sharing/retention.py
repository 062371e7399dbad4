"""Retention of what partners sent: received packages are deleted, with everything they brought, when the
sender's retention period (never longer than the agreement's) ends.

Light on purpose (no format libraries): ``fundtrail retention apply`` runs it through :func:`retention_hook`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from fundtrail.audit import log as audit_log
from fundtrail.cases.context import Context
from fundtrail.cases.models import Case, Subject
from fundtrail.errors import NotFoundError
from fundtrail.sharing.models import SharedPackage
from fundtrail.store.chainstore import ChainStore

PACKAGE_SOURCE_PREFIX = "package "
"""Subjects added from a received package have ``source`` = ``package <package id> (<partner>)``."""

StoreOpener = Callable[[], ChainStore]


def apply_retention(
    ctx: Context,
    *,
    store_opener: StoreOpener | None = None,
    dry_run: bool = False,
    as_of: datetime | None = None,
) -> list[dict[str, Any]]:
    """Delete received packages whose retention ended, with what they brought; returns what was (or would
    be) deleted. Subjects of a case on legal hold are kept, and said so. ``as_of`` plans for another day
    (with ``dry_run``)."""
    when = as_of if as_of is not None and dry_run else ctx.now
    due = (
        ctx.session.execute(
            select(SharedPackage)
            .where(
                SharedPackage.direction == "received",
                SharedPackage.deleted_at.is_(None),
                SharedPackage.retain_until <= when,
            )
            .order_by(SharedPackage.retain_until)
        )
        .scalars()
        .all()
    )
    done: list[dict[str, Any]] = []
    for p in due:
        source = f"{PACKAGE_SOURCE_PREFIX}{p.package_id}"
        subjects = ctx.session.execute(
            select(Subject, Case).join(Case).where(Subject.source.like(source + "%"))
        ).all()
        kept = sorted({c.number for s, c in subjects if c.legal_hold})
        entry = {
            "package_id": p.package_id,
            "partner": p.agreement.partner_name,
            "retain_until": p.retain_until,
            "objects": len(p.objects),
            "subjects": sum(1 for s, c in subjects if not c.legal_hold),
            "kept_for_legal_hold": kept,
            "tags": bool(p.tag_uri),
        }
        done.append(entry)
        if dry_run:
            continue
        for s, c in subjects:
            if not c.legal_hold:
                ctx.session.delete(s)
        for o in list(p.objects):
            ctx.session.delete(o)
        if p.tag_uri and store_opener is not None:
            from fundtrail.intel.tagpacks import delete_pack

            with store_opener() as store:
                try:
                    delete_pack(store, p.tag_uri)
                except NotFoundError:
                    pass
        if p.stored_path:
            shutil.rmtree(ctx.home / p.stored_path, ignore_errors=True)
        p.deleted_at = ctx.now
        p.stored_path = None
        p.summary = None
        ctx.session.flush()
        audit_log.append(
            ctx.session,
            ctx.actor,
            "share.retention",
            "package",
            p.package_id,
            details={k: v.isoformat() if isinstance(v, datetime) else v for k, v in entry.items()},
            at=ctx.now,
            key=ctx.key,
        )
    return done


def retention_hook(
    ctx: Context, home: Path, *, dry_run: bool, as_of: datetime | None
) -> tuple[list[dict[str, Any]], str]:
    """What `fundtrail retention apply` adds: partner packages past their retention, and a line saying so."""
    done = apply_retention(ctx, store_opener=lambda: ChainStore.open_home(home), dry_run=dry_run, as_of=as_of)
    verb = "would delete" if dry_run else "deleted"
    return done, f"{verb} {len(done)} packages received from partners (their retention period ended)"
