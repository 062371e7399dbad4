"""Sharing agreements as records: create, list, show, revoke; the agency's own identity for partners.

An agreement row lives in the case database (``sharing_agreements``); its pseudonymisation key is a
file, ``HOME/keys/agreements/<name>.hmac`` (32 random bytes, hex, mode 0600), that never leaves the
agency and is never logged. Managing agreements is for supervisors and admins, or for the operator
of the home without a case-database user (set-up, the demo). Every change is audited.

The partner's public key is pinned outside the database, in the home's trust file
(:mod:`fundtrail.audit.trust`, owner ``partner:<agreement name>``), when the agreement is made; its
fingerprint is what the two agencies compare out of band. Verifying anything a partner signed uses
the pinned key only (:func:`pinned_partner_key`): a key found only in ``sharing_agreements`` is never
trusted. Agreements recorded before keys were pinned are pinned with :func:`pin_agreement_key`. A
partner with several agreements has its key pinned once, under the first of them.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from fundtrail.audit import trust
from fundtrail.audit.trust import TrustedKey
from fundtrail.cases.context import Context
from fundtrail.cases.users import agency
from fundtrail.domain.cases import Role
from fundtrail.domain.sharing import (
    Agreement,
    Clause,
    DataCategory,
    Pap,
    PartnerAgency,
    Tlp,
    check_agreement_name,
    violation,
)
from fundtrail.errors import ConflictError, InputError, IntegrityError, NotFoundError, PermissionDeniedError
from fundtrail.sharing.models import SharingAgreement
from fundtrail.sharing.signing import public_key_id

log = logging.getLogger(__name__)

MANAGER_ROLES = frozenset({Role.SUPERVISOR, Role.ADMIN})
"""Roles that may create and revoke agreements."""

KEYS_DIR = Path("keys") / "agreements"


def to_domain(row: SharingAgreement) -> Agreement:
    """The domain agreement of a row."""
    return Agreement(
        name=row.name,
        partner=PartnerAgency(
            row.partner_name,
            row.partner_country,
            row.partner_public_key,
            row.partner_key_id,
            row.partner_endpoint,
        ),
        legal_basis=row.legal_basis,
        categories=DataCategory.parse_many(row.categories.split(",")),
        tlp=Tlp(row.tlp),
        pap=Pap(row.pap),
        pseudonymise=row.pseudonymise,
        retention_days=row.retention_days,
        onward_sharing=row.onward_sharing,
        valid_until=row.valid_until,
        active=row.active,
        deadlines=json.loads(row.deadlines) if row.deadlines else {},
    )


def _check_manager(ctx: Context, what: str) -> None:
    if ctx.user is None:
        return  # the operator of the home (set-up, demo)
    if Role(ctx.user.role) not in MANAGER_ROLES:
        raise PermissionDeniedError(
            f"user {ctx.user.username!r} ({ctx.user.role}) may not {what}; allowed roles: "
            f"{', '.join(sorted(r.value for r in MANAGER_ROLES))}"
        )


def pseudonym_key_path(home: Path, name: str) -> Path:
    """Where the agreement's pseudonymisation key lies."""
    return Path(home) / KEYS_DIR / f"{check_agreement_name(name)}.hmac"


def pseudonym_key(home: Path, name: str, *, create: bool = False) -> bytes:
    """The agreement's pseudonymisation key (created, 0600, when ``create`` and missing)."""
    path = pseudonym_key_path(home, name)
    if not path.exists():
        if not create:
            raise NotFoundError("pseudonymisation key of agreement", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
    if path.stat().st_mode & 0o077:
        raise InputError(f"{path}: a pseudonymisation key must be readable by its owner only (chmod 600)")
    return bytes.fromhex(path.read_text().strip())


@dataclass(frozen=True)
class AgreementSpec:
    """What ``agreement create`` is given."""

    name: str
    partner_name: str
    partner_country: str
    partner_public_key: str
    legal_basis: str
    categories: frozenset[DataCategory]
    tlp: Tlp
    pap: Pap
    pseudonymise: bool = True
    retention_days: int = 365
    onward_sharing: bool = False
    partner_endpoint: str | None = None
    partner_key_id: str | None = None
    valid_until: date | None = None
    deadlines: dict[str, int] | None = None


def _check_endpoint(url: str | None) -> str | None:
    if url is None or not url.strip():
        return None
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"partner endpoint {url!r} must be an http(s) URL")
    return url


def create_agreement(ctx: Context, spec: AgreementSpec, *, reason: str | None = None) -> SharingAgreement:
    """Record a new agreement (and create its pseudonymisation key)."""
    _check_manager(ctx, "create sharing agreements")
    name = check_agreement_name(spec.name)
    key_id = public_key_id(spec.partner_public_key.strip())
    if spec.partner_key_id and spec.partner_key_id.strip().lower() != key_id:
        raise InputError(
            f"partner key id {spec.partner_key_id} does not match the public key (its id is {key_id})"
        )
    if ctx.session.execute(select(SharingAgreement.id).where(SharingAgreement.name == name)).first():
        raise ConflictError(f"agreement {name!r} already exists")
    own = ctx.key.key_id
    if key_id == own:
        raise InputError("the partner key is this agency's own key")
    agreement = Agreement(
        name=name,
        partner=PartnerAgency(
            spec.partner_name.strip(),
            spec.partner_country.strip().upper(),
            spec.partner_public_key.strip(),
            key_id,
            _check_endpoint(spec.partner_endpoint),
        ),
        legal_basis=spec.legal_basis.strip(),
        categories=spec.categories,
        tlp=spec.tlp,
        pap=spec.pap,
        pseudonymise=spec.pseudonymise,
        retention_days=spec.retention_days,
        onward_sharing=spec.onward_sharing,
        valid_until=spec.valid_until,
        deadlines=dict(spec.deadlines or {}),
    )
    row = SharingAgreement(
        name=name,
        partner_name=agreement.partner.name,
        partner_country=agreement.partner.country,
        partner_key_id=key_id,
        partner_public_key=agreement.partner.public_key,
        partner_endpoint=agreement.partner.endpoint,
        legal_basis=agreement.legal_basis,
        categories=",".join(sorted(c.value for c in agreement.categories)),
        tlp=agreement.tlp.value,
        pap=agreement.pap.value,
        pseudonymise=agreement.pseudonymise,
        retention_days=agreement.retention_days,
        onward_sharing=agreement.onward_sharing,
        valid_until=agreement.valid_until,
        deadlines=json.dumps(dict(agreement.deadlines), sort_keys=True) if agreement.deadlines else None,
        active=True,
        created_by=ctx.actor,
        created_at=ctx.now,
    )
    ctx.session.add(row)
    ctx.session.flush()
    pseudonym_key(ctx.home, name, create=True)
    pinned = _pin(ctx.home, agreement.partner.public_key, name)
    ctx.audit(
        "agreement.create",
        "agreement",
        name,
        reason=reason,
        details={
            "partner": agreement.partner.name,
            "country": agreement.partner.country,
            "partner_key_id": key_id,
            "partner_key_fingerprint": pinned.fingerprint,
            "pinned_for": pinned.owner,
            "categories": sorted(c.value for c in agreement.categories),
            "tlp": agreement.tlp.value,
            "pap": agreement.pap.value,
            "pseudonymise": agreement.pseudonymise,
            "retention_days": agreement.retention_days,
            "onward_sharing": agreement.onward_sharing,
        },
    )
    log.info("agreement %s with %s (%s) created", name, agreement.partner.name, agreement.partner.country)
    return row


def get_agreement(ctx: Context, name: str) -> SharingAgreement:
    """The agreement ``name``; NotFoundError otherwise."""
    row = ctx.session.execute(
        select(SharingAgreement).where(SharingAgreement.name == name.strip())
    ).scalar_one_or_none()
    if row is None:
        raise NotFoundError("agreement", name)
    return row


def list_agreements(ctx: Context, *, include_revoked: bool = True) -> list[SharingAgreement]:
    """Every agreement, by name."""
    q = select(SharingAgreement).order_by(SharingAgreement.name)
    if not include_revoked:
        q = q.where(SharingAgreement.active.is_(True))
    return list(ctx.session.execute(q).scalars())


def revoke_agreement(ctx: Context, name: str, *, reason: str) -> SharingAgreement:
    """End an agreement: nothing more is sent or accepted under it (what was received keeps its terms)."""
    _check_manager(ctx, "revoke sharing agreements")
    row = get_agreement(ctx, name)
    if not row.active:
        raise InputError(f"agreement {name!r} is already revoked")
    row.active, row.revoked_at = False, ctx.now
    ctx.session.flush()
    ctx.audit("agreement.revoke", "agreement", row.name, reason=reason)
    return row


def _pin(home: Path, public_b64: str, name: str) -> TrustedKey:
    """Pin a partner's key for agreement ``name``; a key already pinned for a partner stays as it is."""
    current = trust.load(home).get(trust.key_id_for(public_b64))
    if current is not None:
        if not current.owner.startswith(trust.PARTNER_PREFIX):
            raise InputError(f"the partner key {current.key_id} is pinned for {current.owner}, not a partner")
        return current
    return trust.pin(home, public_b64, trust.partner_owner(name))


def pinned_partner_key(home: Path, row: SharingAgreement) -> TrustedKey:
    """The partner key of an agreement as the home's trust file pins it; IntegrityError when it is not.

    The key must be pinned for a partner (``partner:<agreement>``) with the very bytes the agreement
    row holds: a key found only in the case database is never trusted.
    """
    pinned = trust.load(home).get(row.partner_key_id)
    if (
        pinned is None
        or not pinned.owner.startswith(trust.PARTNER_PREFIX)
        or pinned.public_key != (row.partner_public_key or "").strip()
    ):
        try:
            shown = trust.fingerprint(row.partner_public_key)
        except InputError:
            shown = "not a valid key"
        raise IntegrityError(
            f"the partner key {row.partner_key_id} of agreement {row.name!r} (fingerprint {shown}) is not "
            f"pinned in this home's trust file: a key found only in the case database is never trusted; "
            f"confirm the fingerprint with the partner, then run `fundtrail agreement pin {row.name}`"
        )
    return pinned


def is_pinned(home: Path, row: SharingAgreement) -> bool:
    """True when the agreement's partner key is pinned in the home's trust file."""
    try:
        pinned_partner_key(home, row)
    except IntegrityError:
        return False
    return True


def pin_agreement_key(
    ctx: Context, name: str, *, fingerprint: str | None = None, reason: str | None = None
) -> TrustedKey:
    """Pin the partner key of an existing agreement (recorded before keys were pinned).

    ``fingerprint``, when given, must be the key's: the one the partner confirmed out of band.
    """
    _check_manager(ctx, "pin partner keys")
    row = get_agreement(ctx, name)
    key_id = trust.key_id_for(row.partner_public_key)
    if key_id != row.partner_key_id:
        raise IntegrityError(
            f"agreement {row.name!r}: its key id {row.partner_key_id} does not match its public key "
            f"(whose id is {key_id}); the agreement row was changed"
        )
    actual = trust.fingerprint(row.partner_public_key)
    if fingerprint is not None and _normal(fingerprint) != _normal(actual):
        raise InputError(
            f"the partner key of agreement {row.name!r} has fingerprint {actual}, not {fingerprint}: "
            f"do not pin it before the partner confirms its key"
        )
    pinned = _pin(ctx.home, row.partner_public_key, row.name)
    ctx.audit(
        "agreement.pin",
        "agreement",
        row.name,
        reason=reason,
        details={"partner_key_id": key_id, "fingerprint": actual, "pinned_for": pinned.owner},
    )
    log.info("partner key %s of agreement %s pinned (%s)", key_id, row.name, actual)
    return pinned


def _normal(fingerprint: str) -> str:
    text = fingerprint.strip().lower()
    return text.removeprefix("sha256:").replace(":", "")


def agreements_for_key(ctx: Context, key_id: str) -> list[SharingAgreement]:
    """The active agreements whose partner holds ``key_id``."""
    return list(
        ctx.session.execute(
            select(SharingAgreement)
            .where(SharingAgreement.partner_key_id == key_id, SharingAgreement.active.is_(True))
            .order_by(SharingAgreement.name)
        ).scalars()
    )


def agreement_for_partner(ctx: Context, key_id: str, name_hint: str | None = None) -> SharingAgreement:
    """The one active agreement with the partner holding ``key_id`` (the hint picks among several).

    IntegrityError unless that agreement's key is pinned in the home's trust file.
    """
    found = agreements_for_key(ctx, key_id)
    if not found:
        raise IntegrityError(
            f"key {key_id} is not the key of any partner this agency has an active agreement with"
        )
    if len(found) == 1:
        pinned_partner_key(ctx.home, found[0])
        return found[0]
    named = [a for a in found if a.name == name_hint]
    if len(named) == 1:
        pinned_partner_key(ctx.home, named[0])
        return named[0]
    raise InputError(
        f"key {key_id} has {len(found)} agreements ({', '.join(a.name for a in found)}); the "
        f"package names {name_hint!r}, which is not one of them"
    )


def require_category(row: SharingAgreement, category: DataCategory, today: date, what: str) -> Agreement:
    """The agreement, when in force and allowing ``category`` (``what`` says why it is needed)."""
    agreement = to_domain(row)
    agreement.check_in_force(today)
    if category not in agreement.categories:
        raise violation(
            agreement.name, Clause.CATEGORIES, f"{what} {category.value}, which the agreement does not allow"
        )
    return agreement


def agreement_doc(row: SharingAgreement, home: Path | None = None) -> dict[str, Any]:
    """An agreement as JSON values (never its pseudonymisation key); with ``home``, whether its partner
    key is pinned there, and the key's fingerprint."""
    doc = to_domain(row).to_dict()
    try:
        doc["partner"]["fingerprint"] = trust.fingerprint(row.partner_public_key)
    except InputError:
        doc["partner"]["fingerprint"] = None
    if home is not None:
        doc["partner"]["pinned"] = is_pinned(home, row)
    doc.update({"created_by": row.created_by, "created_at": row.created_at, "revoked_at": row.revoked_at})
    return doc


@dataclass(frozen=True)
class AgencyIdentity:
    """How partners know this agency: name, country, key id, public key, endpoint."""

    name: str
    country: str
    key_id: str
    public_key: str

    def to_dict(self) -> dict[str, Any]:
        """JSON values."""
        return {
            "name": self.name,
            "country": self.country,
            "key_id": self.key_id,
            "public_key": self.public_key,
            "algorithm": "ed25519",
        }


def agency_identity(ctx: Context) -> AgencyIdentity:
    """This agency's identity for partners (the agency settings and the signing key)."""
    settings = agency(ctx)
    if settings is None:
        raise InputError(
            "the agency is not set up yet (its name and jurisdiction): `fundtrail agency set ...`"
        )
    return AgencyIdentity(settings.name, settings.jurisdiction, ctx.key.key_id, ctx.key.public_b64)


def parse_deadlines(items: Iterable[str]) -> dict[str, int]:
    """``freeze=10`` items as ``{"freeze": 10}``; InputError otherwise."""
    out: dict[str, int] = {}
    for item in items:
        kind, sep, days = item.partition("=")
        if not sep or not days.strip().isdigit():
            raise InputError(f"deadline {item!r}: expected TYPE=DAYS, e.g. freeze=10")
        out[kind.strip().lower()] = int(days)
    return out
