"""Exporting a case to a partner and importing what partners send: the checks, the records, the audit.

Export (:func:`export_case`): the agreement must be in force and allow what the chosen format carries
(and any partner data in the case must be allowed to travel on); the package is rendered, its envelope
signed with the agency key, the sent package recorded and the export audited.

Import (:func:`import_package`): nothing is stored before every check passed. In order: the envelope
is read; the sender's key must be a partner's with an active agreement; the signature must be that
partner's; the package must be addressed to this agency; its terms (marking, categories,
pseudonymisation, retention) must fit the agreement; the payload must be exactly what the envelope
pins; its schema must validate (STIX via ``stix2``, FtM via its model, TagPacks via the intel layer's
validator, BagIt via ``bagit`` and each evidence signature); and it may carry no category its envelope
does not declare. Then, in one transaction, the package and its objects are recorded with their
provenance (partner, package id, received at) and the date they must be deleted. A rejected package
leaves only an audit record of the rejection (never its content).

Retention (:func:`fundtrail.sharing.retention.apply_retention`): received packages past their date are
deleted with everything they brought (objects, stored files, tags, case subjects), leaving a tombstone.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from fundtrail.audit import log as audit_log
from fundtrail.cases.context import Context
from fundtrail.cases.models import Case, Subject
from fundtrail.domain.cases import Action
from fundtrail.domain.sharing import (
    Agreement,
    Clause,
    DataCategory,
    ExportContent,
    PackageFormat,
    retention_until,
    violation,
)
from fundtrail.errors import (
    ConflictError,
    InputError,
    InputLimitError,
    IntegrityError,
    NotFoundError,
    ParseError,
)
from fundtrail.limits import ENV_VARS as LIMIT_VARS
from fundtrail.limits import InputLimits, check_nesting, input_limits, read_bounded
from fundtrail.sharing import bagit as bags
from fundtrail.sharing import envelope as env
from fundtrail.sharing import ftm, stix, tagpack, validation
from fundtrail.sharing.agreements import (
    agency_identity,
    agreement_for_partner,
    get_agreement,
    pinned_partner_key,
    pseudonym_key,
    to_domain,
)
from fundtrail.sharing.content import PACKAGE_SOURCE_PREFIX, CaseContent, gather
from fundtrail.sharing.models import SharedObject, SharedPackage, SharingAgreement
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)

SHARED_DIR = "shared"
"""Received payloads are kept under ``HOME/shared/<package id>/`` until their retention ends."""

OUTBOX_DIR = Path(SHARED_DIR) / "outbox"
"""STIX packages published on this agency's TAXII server: ``HOME/shared/outbox/<package id>.json``."""

StoreOpener = Callable[[], ChainStore]


def partner_actor(key_id: str) -> str:
    """How the audit log names a partner agency acting through the API."""
    return f"partner:{key_id}"


def audit_as(
    ctx: Context,
    action: str,
    object_type: str,
    object_id: str | None,
    *,
    actor: str | None = None,
    case: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an audit record in the operation's transaction, as ``actor`` (a partner) or the acting user."""
    audit_log.append(
        ctx.session,
        actor or ctx.actor,
        action,
        object_type,
        object_id,
        case_number=case,
        reason=reason,
        details=details,
        at=ctx.now,
        key=ctx.key,
    )


# ------------------------------------------------------------------------------------------ export


@dataclass
class ExportResult:
    """What an export wrote."""

    package_id: str
    format: PackageFormat
    path: Path
    envelope_path: Path | None
    agreement: str
    case: str
    categories: list[str]
    counts: dict[str, int]
    envelope: env.Envelope

    def to_dict(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "package_id": self.package_id,
            "format": self.format.value,
            "path": str(self.path),
            "envelope": str(self.envelope_path) if self.envelope_path else None,
            "agreement": self.agreement,
            "case": self.case,
            "categories": self.categories,
            "counts": self.counts,
            "marking": self.envelope.marking.model_dump(mode="json"),
            "recipient": self.envelope.recipient.model_dump(mode="json"),
        }


def _sanctioned(store: ChainStore | None, content: CaseContent) -> dict[tuple[str, str], list[str]]:
    if store is None:
        return {}
    from fundtrail.intel.sanctions import sanctioned_among
    from fundtrail.intel.tagstore import has_table

    if not has_table(store, "sanctions"):
        return {}
    out: dict[tuple[str, str], list[str]] = {}
    chains = sorted({c for c, _ in content.wallets})
    for chain in chains:
        hits = sanctioned_among(store, chain, [a for c, a in content.wallets if c == chain])
        for address, found in hits.items():
            if found:
                out[(chain, address)] = sorted({getattr(h, "list_name", "sanctions list") for h in found})
    return out


def _counts(fmt: PackageFormat, payload: Any) -> dict[str, int]:
    if fmt is PackageFormat.STIX:
        kinds: dict[str, int] = {}
        for o in payload:
            kinds[o["type"]] = kinds.get(o["type"], 0) + 1
        return kinds
    if fmt is PackageFormat.FTM:
        schemata: dict[str, int] = {}
        for e in payload:
            schemata[e["schema"]] = schemata.get(e["schema"], 0) + 1
        return schemata
    if fmt is PackageFormat.TAGPACK:
        return {"tags": len(payload)}
    return {"evidence": len(payload)}


def export_case(
    ctx: Context,
    number: str,
    agreement_name: str,
    fmt: PackageFormat | str,
    out: Path | None,
    *,
    store: ChainStore | None = None,
    reason: str | None = None,
    transport: str = "file",
) -> ExportResult:
    """Export a case to the agreement's partner as a signed package at ``out`` (see the module docstring)."""
    fmt = PackageFormat(fmt)
    row = get_agreement(ctx, agreement_name)
    pinned_partner_key(ctx.home, row)  # addressed only to a partner key pinned outside the database
    agreement = to_domain(row)
    case = ctx.case(number, Action.EXPORT_EVIDENCE)
    content = gather(ctx, case)
    if fmt is PackageFormat.BAGIT:
        categories = bags.bag_categories(content)
    else:
        categories = content.categories_for(fmt, agreement.allowed_for(fmt))
    if not categories:
        raise InputError(f"case {case.number} holds nothing that agreement {agreement.name} lets you share "
                         f"as {fmt.value} (no subjects, evidence or tags of an allowed category); "
                         "nothing was written")
    agreement.check_export(ExportContent(fmt, categories, content.origins), ctx.now.date())
    me = agency_identity(ctx)
    package_id = env.new_package_id()
    if out is None:
        if fmt is not PackageFormat.STIX:
            raise InputError("only STIX packages are published to the TAXII outbox")
        out = ctx.home / OUTBOX_DIR / f"{package_id}.json"
    out = Path(out)
    if out.exists() or env.sidecar_of(out).exists():
        raise InputError(f"{out} already exists: a package is never overwritten")
    created = env.now_text(ctx.now)
    pseudonymise = agreement.pseudonymise and DataCategory.PERSONAL_DATA in categories
    base = env.Envelope(
        package_id=package_id,
        format=fmt,
        created=created,
        sender=env.Party(name=me.name, country=me.country, key_id=me.key_id),
        recipient=env.Party(
            name=agreement.partner.name, country=agreement.partner.country, key_id=agreement.partner.key_id
        ),
        agreement=agreement.name,
        legal_basis=agreement.legal_basis,
        case=content.number,
        marking=env.Marking(tlp=agreement.tlp, pap=agreement.pap),
        categories=sorted(categories),
        pseudonymised=pseudonymise,
        retention_days=agreement.retention_days,
        onward_sharing=agreement.onward_sharing,
        contents=env.Contents(),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    reason = reason or f"shared with {agreement.partner.name} under agreement {agreement.name}"
    sidecar: Path | None = None
    with tempfile.TemporaryDirectory(prefix=".fundtrail-export-", dir=out.parent) as tmp:
        staging = Path(tmp) / "payload"
        if fmt is PackageFormat.STIX:
            objects = stix.build_bundle(
                content,
                categories,
                tlp=agreement.tlp,
                pap=agreement.pap,
                sender_name=me.name,
                sender_country=me.country,
                sender_key_id=me.key_id,
                now=ctx.now,
                sanctioned=_sanctioned(store, content),
                include_summary=DataCategory.PERSONAL_DATA in agreement.categories,
            )
            signed = env.sign(
                base.model_copy(update={"contents": env.Contents(objects=stix.contents_of(objects))}), ctx.key
            )
            package = stix.package_object(signed, stix.agency_identity_id(me.key_id))
            staging.write_text(
                json.dumps(stix.bundle([*objects, package]), indent=2, sort_keys=True) + "\n",
                encoding="utf-8",
            )
            counts = _counts(fmt, objects)
        else:
            if fmt is PackageFormat.FTM:
                key = pseudonym_key(ctx.home, agreement.name, create=True) if pseudonymise else None
                entities = ftm.build_entities(content, categories, pseudonym_key=key)
                ftm.write_jsonl(staging, entities)
                counts = _counts(fmt, entities)
            elif fmt is PackageFormat.TAGPACK:
                tags = tagpack.tag_documents(content, me.name, ctx.now)
                if not tags:
                    raise InputError(f"case {content.number} holds no attribution tags to send")
                tagpack.write_tagpack(
                    tags,
                    staging,
                    title=f"Case {content.number}: attribution tags",
                    creator=me.name,
                    description=f"Tags of the addresses of case {content.number} "
                    f"({agreement.tlp.label}, {agreement.pap.label})",
                )
                counts = _counts(fmt, tags)
            else:
                ids = bags.build_bag(
                    ctx,
                    content,
                    staging,
                    recipient=f"{agreement.partner.name} "
                    f"({agreement.partner.country}) under agreement {agreement.name}",
                    reason=reason,
                    info=bags.bag_info(
                        content, package_id, me.name, f"{agreement.tlp.label} {agreement.pap.label}", ctx.now
                    ),
                )
                counts = _counts(fmt, ids)
            files = env.payload_files(staging)
            if not staging.is_dir():
                files = {out.name: next(iter(files.values()))}
            signed = env.sign(base.model_copy(update={"contents": env.Contents(files=files)}), ctx.key)
            sidecar = env.write_sidecar(out, signed)
        staging.replace(out)
    digest = env.file_sha256(out) if out.is_file() else env.object_sha256(signed.contents.model_dump())
    ctx.session.add(
        SharedPackage(
            package_id=package_id,
            direction="sent",
            agreement_id=row.id,
            format=fmt.value,
            transport=transport,
            case_number=content.number,
            sender_key_id=me.key_id,
            recipient_key_id=agreement.partner.key_id,
            sha256=digest,
            tlp=agreement.tlp.value,
            pap=agreement.pap.value,
            categories=",".join(sorted(c.value for c in categories)),
            retention_days=agreement.retention_days,
            onward_sharing=agreement.onward_sharing,
            created_at=ctx.now,
            summary=json.dumps(counts, sort_keys=True),
            actor=ctx.actor,
            stored_path=str(out.resolve().relative_to(ctx.home.resolve()))
            if out.resolve().is_relative_to(ctx.home.resolve())
            else None,
        )
    )
    ctx.session.flush()
    ctx.written.append(out)
    if sidecar is not None:
        ctx.written.append(sidecar)
    audit_as(
        ctx,
        "share.export",
        "package",
        package_id,
        case=content.number,
        reason=reason,
        details={
            "agreement": agreement.name,
            "partner": agreement.partner.name,
            "partner_key_id": agreement.partner.key_id,
            "format": fmt.value,
            "categories": sorted(c.value for c in categories),
            "counts": counts,
            "tlp": agreement.tlp.value,
            "pap": agreement.pap.value,
            "transport": transport,
            "pseudonymised": pseudonymise,
        },
    )
    log.info(
        "case %s exported as %s package %s under %s", content.number, fmt.value, package_id, agreement.name
    )
    return ExportResult(
        package_id,
        fmt,
        out,
        sidecar,
        agreement.name,
        content.number,
        sorted(c.value for c in categories),
        counts,
        signed,
    )


def send_package(
    ctx: Context,
    number: str,
    agreement_name: str,
    *,
    store: ChainStore | None = None,
    reason: str | None = None,
    clients: Any = None,
) -> dict[str, Any]:
    """Export a case as STIX and post it to the partner's FundTrail; recorded only if the partner took it."""
    from fundtrail.sharing.partners import http_client

    with tempfile.TemporaryDirectory(prefix="fundtrail-send-") as tmp:
        result = export_case(
            ctx,
            number,
            agreement_name,
            PackageFormat.STIX,
            Path(tmp) / "package.json",
            store=store,
            reason=reason,
            transport="api",
        )
        bundle = json.loads(result.path.read_text(encoding="utf-8"))
        ctx.written.remove(result.path)
    row = get_agreement(ctx, agreement_name)
    client = (clients or http_client)(row, ctx.key)
    try:
        delivered = client.call("POST", "/packages", bundle)
    finally:
        client.close()
    doc = result.to_dict()
    doc["path"] = None
    doc["delivered"] = delivered
    return doc


# ------------------------------------------------------------------------------------------ import


@dataclass
class Received:
    """A package read from a file or a transport, before any check."""

    envelope: env.Envelope
    path: Path | None
    stix: stix.ReadPackage | None = None
    source: str = ""


def read_package(path: Path, limits: InputLimits | None = None) -> Received:
    """The package at ``path``: a STIX bundle (envelope inside), or a payload with its envelope beside it.

    A file without an envelope beside it must be a STIX bundle: empty, binary, truncated or other JSON
    is refused as bad input saying what it is (:class:`ParseError`), within ``limits`` (size, nesting).
    """
    path = Path(path)
    if not path.exists():
        raise NotFoundError("package", str(path))
    if path.is_file() and not env.sidecar_of(path).exists():
        package = _read_bundle(path, limits or input_limits())
        if package is not None:
            return Received(package.envelope, path, package, path.name)
    envelope = env.read_sidecar(path)
    return Received(envelope, path, None, path.name)


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def _ends_open(body: str) -> bool:
    """True when JSON text stops inside a string or with brackets left open: a truncated document."""
    bare = _JSON_STRING.sub("", body)
    unterminated = bare.count('"') % 2 == 1
    if unterminated:  # the last string runs to the end: what it holds is no structure
        bare = bare[: bare.rindex('"')]
    opened: list[str] = []
    for char in _JSON_BRACKET.findall(bare):
        if char in "{[":
            opened.append("}" if char == "{" else "]")
        elif not opened or opened.pop() != char:
            return False  # a bracket closed that was not open: malformed, not cut short
    return bool(opened) or unterminated


def _read_bundle(path: Path, limits: InputLimits) -> stix.ReadPackage | None:
    """The STIX bundle of a file without an envelope beside it; None when it is no JSON document at all
    (a payload whose envelope is missing: JSON lines, YAML), ParseError when it is not a bundle."""
    name = path.name
    missing = f"and no signed envelope beside it ({env.sidecar_of(path).name})"
    with path.open("rb") as fh:
        data = read_bounded(fh, name, limits)
    if not data.strip():
        raise ParseError(name, None, f"empty file: not a STIX bundle, {missing}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ParseError(name, None, f"binary data (byte {data[error.start]:#04x} at offset {error.start}), "
                                     f"not a STIX bundle (JSON), {missing}") from None
    body = text.strip()
    if body[:1] not in ("{", "["):
        return None
    try:
        document = json.loads(text)
    except RecursionError:
        raise InputLimitError(name, None, "JSON nested too deeply to read, not a STIX bundle",
                              LIMIT_VARS["max_nesting"]) from None
    except json.JSONDecodeError as error:
        first, _, rest = body.partition("\n")
        if rest.strip() and _is_json_object(first):
            return None  # JSON lines: an FtM payload
        where = f"line {error.lineno} column {error.colno}"
        if _ends_open(body):
            raise ParseError(name, where, f"truncated JSON (the document ends early), {missing}") from None
        raise ParseError(name, where, f"not valid JSON ({error.msg}), {missing}") from None
    check_nesting(document, name, limits)
    if (
        not isinstance(document, dict)
        or document.get("type") != "bundle"
        or not isinstance(document.get("objects"), list)
    ):
        raise ParseError(name, None, f"JSON, but not a STIX 2.1 bundle (no \"type\": \"bundle\" with "
                                     f"\"objects\"), {missing}")
    return stix.read_bundle_file(document, name)


def received_from_objects(objects: list[dict[str, Any]], source: str) -> Received:
    """A STIX package assembled from objects (pulled from TAXII, or posted by a partner)."""
    package = stix.split_package(objects, source)
    return Received(package.envelope, None, package, source)


@dataclass
class ImportResult:
    """What an import stored."""

    package_id: str
    format: PackageFormat
    agreement: str
    partner: str
    categories: list[str]
    objects: int
    retain_until: datetime
    case_subjects: int = 0
    tags: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "package_id": self.package_id,
            "format": self.format.value,
            "agreement": self.agreement,
            "partner": self.partner,
            "categories": self.categories,
            "objects": self.objects,
            "counts": self.counts,
            "retain_until": self.retain_until.isoformat(),
            "case_subjects": self.case_subjects,
            "tags": self.tags,
        }


def _check_terms(ctx: Context, received: Received) -> tuple[SharingAgreement, Agreement, str]:
    """The agreement, its terms, and the partner's pinned public key, once the envelope verifies."""
    e = received.envelope
    row = agreement_for_partner(ctx, e.sender.key_id, e.agreement)
    agreement = to_domain(row)
    public = pinned_partner_key(ctx.home, row).public_key  # never the key of the database row alone
    env.verify(e, public, received.source)
    own = ctx.key.key_id
    if e.recipient.key_id != own:
        raise violation(
            agreement.name,
            Clause.PARTNER,
            f"package {e.package_id} is addressed to key {e.recipient.key_id}, not to this agency ({own})",
        )
    agreement.check_import(e.terms(), ctx.now.date())
    return row, agreement, public


def _check_declared(received: Received, carried: frozenset[DataCategory], agreement: Agreement) -> None:
    declared = set(received.envelope.categories)
    undeclared = sorted(c.value for c in carried - declared)
    if undeclared:
        raise IntegrityError(
            f"{received.source}: the package carries {', '.join(undeclared)}, which its "
            f"envelope does not declare"
        )
    outside = sorted(c.value for c in carried - agreement.categories)
    if outside:
        raise violation(
            agreement.name,
            Clause.CATEGORIES,
            f"the package carries {', '.join(outside)}, which the agreement does not allow",
        )


def import_package(
    ctx: Context,
    received: Received,
    *,
    store_opener: StoreOpener | None = None,
    case: str | None = None,
    transport: str = "file",
    actor: str | None = None,
) -> ImportResult:
    """Verify a received package and store it with its provenance, or raise and store nothing."""
    if ctx.user is not None:
        ctx.require(Action.HANDLE_REQUEST)
    row, agreement, partner_key = _check_terms(ctx, received)
    e = received.envelope
    fmt = e.format
    validation.check_envelope(e, received.source)
    if fmt is PackageFormat.TAGPACK and store_opener is None:
        raise InputError("importing a TagPack needs the chain store")
    items: list[Any]
    tag_pack = None
    if fmt is PackageFormat.STIX:
        if received.stix is None:
            raise IntegrityError(f"{received.source}: a STIX package must be a bundle holding its envelope")
        validation.check_stix_objects(received.stix.objects, received.source)
        items, carried = stix.check_objects(received.stix, received.source)
    else:
        if received.path is None or e.contents.files is None:
            raise IntegrityError(f"{received.source}: the envelope pins no files")
        env.check_files(received.path, e.contents.files, received.source)
        if fmt is PackageFormat.FTM:
            items, carried = ftm.check_entities(received.path, pseudonymised=e.pseudonymised)
        elif fmt is PackageFormat.TAGPACK:
            tag_pack, carried = tagpack.check_tagpack(received.path)
            items = [
                {
                    "kind": "tag",
                    "chain": t.chain,
                    "value": t.address,
                    "label": t.resolved.get("label"),
                    "content": {k: str(v) if k == "lastmod" else v for k, v in t.own.items()},
                }
                for t in tag_pack.tags
            ]
        else:
            if not received.path.is_dir():
                raise IntegrityError(f"{received.source}: a BagIt package is a folder")
            items, carried = bags.check_bag(received.path, e.sender.key_id, partner_key)
    validation.check_items(items, received.source)
    if tag_pack is not None:
        validation.check_content(received.source, "TagPack header", dict(tag_pack.header))
    _check_declared(received, carried, agreement)
    if ctx.session.execute(
        select(SharedPackage.id).where(
            SharedPackage.package_id == e.package_id, SharedPackage.direction == "received"
        )
    ).first():
        raise ConflictError(f"package {e.package_id} was already received")
    target_case: Case | None = ctx.case(case, Action.EDIT_CASE) if case else None
    days = agreement.retention_for(e.terms())
    until = retention_until(ctx.now, days)
    stored_path: Path | None = None
    if received.path is not None:
        folder = ctx.home / SHARED_DIR / e.package_id
        if folder.exists():
            raise ConflictError(f"{folder} already exists")
        folder.mkdir(parents=True)
        ctx.written.append(folder)
        if received.path.is_dir():
            bags.copy_bag(received.path, folder / received.path.name)
        else:
            shutil.copy2(received.path, folder / received.path.name)
            if env.sidecar_of(received.path).exists():
                shutil.copy2(env.sidecar_of(received.path), folder / env.sidecar_of(received.path).name)
        stored_path = folder
    package = SharedPackage(
        package_id=e.package_id,
        direction="received",
        agreement_id=row.id,
        format=fmt.value,
        transport=transport,
        case_number=e.case,
        sender_key_id=e.sender.key_id,
        recipient_key_id=e.recipient.key_id,
        sha256=env.object_sha256(e.unsigned()),
        tlp=e.marking.tlp.value,
        pap=e.marking.pap.value,
        categories=",".join(sorted(c.value for c in e.categories)),
        retention_days=days,
        onward_sharing=e.onward_sharing,
        created_at=env.parse_created(e.created),
        received_at=ctx.now,
        retain_until=until,
        stored_path=str(stored_path.relative_to(ctx.home)) if stored_path else None,
        actor=actor or ctx.actor,
    )
    ctx.session.add(package)
    ctx.session.flush()
    counts: dict[str, int] = {}
    subjects = 0
    for item in items:
        doc = item if isinstance(item, dict) else item.__dict__
        kind = doc["kind"]
        counts[kind] = counts.get(kind, 0) + 1
        ctx.session.add(
            SharedObject(
                package_id=package.id,
                kind=kind,
                ref=doc.get("ref"),
                chain=doc.get("chain"),
                value=doc.get("value"),
                label=doc.get("label"),
                content=json.dumps(doc["content"], sort_keys=True, default=str),
            )
        )
        if target_case is not None and kind == "wallet" and doc.get("chain") and doc.get("value"):
            subjects += _add_case_subject(ctx, target_case, doc, e.package_id, agreement.partner.name)
    tags = 0
    if tag_pack is not None and store_opener is not None:
        from fundtrail.intel.tagpacks import store_pack

        with store_opener() as store:
            result = store_pack(store, tag_pack, tag_uri(e.package_id), kind="partner")
        package.tag_uri = tag_uri(e.package_id)
        tags = result.tags
    package.summary = json.dumps(counts, sort_keys=True)
    ctx.session.flush()
    audit_as(
        ctx,
        "share.import",
        "package",
        e.package_id,
        actor=actor,
        case=target_case.number if target_case else None,
        details={
            "agreement": agreement.name,
            "partner": agreement.partner.name,
            "partner_key_id": e.sender.key_id,
            "format": fmt.value,
            "sender_case": e.case,
            "categories": sorted(c.value for c in e.categories),
            "counts": counts,
            "tlp": e.marking.tlp.value,
            "pap": e.marking.pap.value,
            "transport": transport,
            "retain_until": until.isoformat(),
            "onward_sharing": e.onward_sharing,
        },
    )
    log.info(
        "package %s received from %s under %s (%s, %d objects)",
        e.package_id,
        agreement.partner.name,
        agreement.name,
        fmt.value,
        len(items),
    )
    return ImportResult(
        e.package_id,
        fmt,
        agreement.name,
        agreement.partner.name,
        sorted(c.value for c in e.categories),
        len(items),
        until,
        subjects,
        tags,
        counts,
    )


def _add_case_subject(ctx: Context, case: Case, doc: dict[str, Any], package_id: str, partner: str) -> int:
    from fundtrail.cases.cases import add_subject

    held = ctx.session.execute(
        select(Subject.id).where(
            Subject.case_id == case.id,
            Subject.kind == "address",
            Subject.chain == doc["chain"],
            Subject.value == doc["value"],
        )
    ).first()
    if held:
        return 0
    add_subject(
        ctx,
        case.number,
        "address",
        doc["value"],
        chain=doc["chain"],
        label=doc.get("label"),
        role="partner",
        source=f"{PACKAGE_SOURCE_PREFIX}{package_id} ({partner})",
    )
    return 1


def tag_uri(package_id: str) -> str:
    """The tag-store key of a received TagPack."""
    return f"partner:{package_id}"


def record_rejection(
    ctx: Context,
    source: str,
    error: Exception,
    *,
    actor: str | None = None,
    transport: str = "file",
    envelope: env.Envelope | None = None,
) -> None:
    """Audit a rejected package: where it came from and why, never its content."""
    details: dict[str, Any] = {
        "source": source,
        "problem": str(error),
        "error": type(error).__name__,
        "transport": transport,
    }
    if envelope is not None:
        details.update(
            {
                "package_id": envelope.package_id,
                "sender_key_id": envelope.sender.key_id,
                "format": envelope.format.value,
            }
        )
    audit_as(
        ctx,
        "share.reject",
        "package",
        envelope.package_id if envelope else None,
        actor=actor,
        details=details,
    )


# ------------------------------------------------------------------------------------------ listing


def package_doc(p: SharedPackage) -> dict[str, Any]:
    """A package record as JSON values."""
    return {
        "package_id": p.package_id,
        "direction": p.direction,
        "agreement": p.agreement.name,
        "partner": p.agreement.partner_name,
        "format": p.format,
        "transport": p.transport,
        "case": p.case_number,
        "sender_key_id": p.sender_key_id,
        "recipient_key_id": p.recipient_key_id,
        "marking": {"tlp": p.tlp, "pap": p.pap},
        "categories": p.categories.split(","),
        "retention_days": p.retention_days,
        "onward_sharing": p.onward_sharing,
        "created_at": p.created_at,
        "received_at": p.received_at,
        "retain_until": p.retain_until,
        "deleted_at": p.deleted_at,
        "counts": json.loads(p.summary) if p.summary else {},
    }


def list_packages(
    ctx: Context, *, direction: str | None = None, include_deleted: bool = False
) -> list[SharedPackage]:
    """Packages sent and received, newest first."""
    q = select(SharedPackage).order_by(SharedPackage.id.desc())
    if direction:
        q = q.where(SharedPackage.direction == direction)
    if not include_deleted:
        q = q.where(SharedPackage.deleted_at.is_(None))
    audit_as(ctx, "share.list", "package", None, details={"direction": direction})
    return list(ctx.session.execute(q).scalars())


def find_shared(ctx: Context, chain: str, value: str) -> list[dict[str, Any]]:
    """Received objects about an address or transaction, with their provenance."""
    rows = ctx.session.execute(
        select(SharedObject, SharedPackage)
        .join(SharedPackage)
        .where(SharedObject.chain == chain, SharedObject.value == value, SharedPackage.deleted_at.is_(None))
    ).all()
    audit_as(ctx, "share.lookup", "package", None, details={"chain": chain, "found": len(rows)})
    return [
        {
            "kind": o.kind,
            "label": o.label,
            "package_id": p.package_id,
            "partner": p.agreement.partner_name,
            "received_at": p.received_at,
            "retain_until": p.retain_until,
            "marking": {"tlp": p.tlp, "pap": p.pap},
        }
        for o, p in rows
    ]
