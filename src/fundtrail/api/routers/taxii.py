"""FundTrail's own TAXII 2.1 server (the routes): one outbox and one inbox collection per partner agreement.

The collections themselves (ids, what they hold) are :mod:`fundtrail.sharing.taxii_server`.

==========================================================  ============================================
``GET  /taxii2/``                                           discovery
``GET  /taxii2/fundtrail/``                                 the API root
``GET  /taxii2/fundtrail/collections/``                     the calling partner's collections
``GET  /taxii2/fundtrail/collections/{id}/``                one collection
``GET  /taxii2/fundtrail/collections/{id}/objects/``        objects, with ``added_after``, ``limit`` and
                                                            ``next`` paging, ``match[id|type|version|
                                                            spec_version]``
``GET  /taxii2/fundtrail/collections/{id}/objects/{oid}/``  one object (its versions: ``.../versions/``)
``GET  /taxii2/fundtrail/collections/{id}/manifest/``       the manifest of the objects
``POST /taxii2/fundtrail/collections/{id}/objects/``        the partner adds a package (inbox only)
``GET  /taxii2/fundtrail/status/{id}/``                     how an addition went
==========================================================  ============================================

Every call is a partner's signed request (:mod:`fundtrail.sharing.signing`); a partner sees only the
collections of its own agreement. The outbox serves the STIX packages published for the partner
(``fundtrail share publish``), each object dated by its package's publication; the inbox takes a
whole package per POST (its signed ``fundtrail-package`` envelope and every object it pins) and
imports it exactly as a file would be: verified whole, or nothing stored. A package is answered
``complete`` with every object a success, or every object a failure with the reason.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from fundtrail.api.routers.cooperation import Partner, PartnerCall, sharing_state
from fundtrail.cases.context import operation
from fundtrail.domain.sharing import format_timestamp, parse_timestamp
from fundtrail.errors import FundTrailError, InputError, NotFoundError
from fundtrail.sharing.models import SharedPackage, SharingAgreement
from fundtrail.sharing.taxii_server import OUTBOX_TRANSPORT, STIX_MEDIA, Collection, collection_id

TAXII_MEDIA = "application/taxii+json;version=2.1"
API_ROOT = "fundtrail"
MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_CONTENT = 32 * 1024 * 1024

router = APIRouter(prefix="/taxii2", tags=["taxii"])


def taxii(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """A TAXII 2.1 answer (its media type)."""
    return JSONResponse(document, status_code=status, media_type=TAXII_MEDIA, headers=headers)


def _agreements(call: PartnerCall) -> list[SharingAgreement]:
    with call.db.session() as session:
        return list(
            session.execute(
                select(SharingAgreement).where(
                    SharingAgreement.partner_key_id == call.key_id, SharingAgreement.active.is_(True)
                )
            ).scalars()
        )


def _collections(call: PartnerCall) -> dict[str, Collection]:
    out = {}
    for row in _agreements(call):
        for kind in ("outbox", "inbox"):
            c = Collection(collection_id(kind, row.name), kind, row.name)
            out[c.id] = c
    return out


def _collection(call: PartnerCall, cid: str) -> Collection:
    found = _collections(call).get(cid)
    if found is None:
        raise NotFoundError("collection", cid)
    return found


@router.get("/", operation_id="taxii_discovery", summary="TAXII discovery")
def discovery(request: Request, call: Partner) -> JSONResponse:
    """Where this server's API root is."""
    root = str(request.url_for("api_root", api_root=API_ROOT))
    return taxii(
        {
            "title": "FundTrail TAXII 2.1",
            "description": "Packages exchanged with partner agencies",
            "default": root,
            "api_roots": [root],
        }
    )


@router.get("/{api_root}/", operation_id="taxii_api_root", summary="TAXII API root")
def api_root(api_root: str, call: Partner) -> JSONResponse:
    """The API root's information."""
    _check_root(api_root)
    return taxii(
        {
            "title": "FundTrail",
            "description": "Partner packages",
            "versions": [TAXII_MEDIA],
            "max_content_length": MAX_CONTENT,
        }
    )


def _check_root(api_root: str) -> None:
    if api_root != API_ROOT:
        raise NotFoundError("API root", api_root)


@router.get("/{api_root}/collections/", operation_id="taxii_collections", summary="TAXII collections")
def collections(api_root: str, call: Partner) -> JSONResponse:
    """The calling partner's collections: an outbox and an inbox per agreement."""
    _check_root(api_root)
    return taxii({"collections": [c.to_dict() for c in _collections(call).values()]})


@router.get("/{api_root}/collections/{cid}/", operation_id="taxii_collection", summary="One collection")
def collection(api_root: str, cid: str, call: Partner) -> JSONResponse:
    """One collection."""
    _check_root(api_root)
    return taxii(_collection(call, cid).to_dict())


@dataclass(frozen=True)
class Entry:
    """An object as the outbox serves it."""

    date_added: str
    id: str
    version: str
    obj: dict[str, Any]

    def manifest(self) -> dict[str, Any]:
        """The manifest entry."""
        return {
            "id": self.id,
            "date_added": self.date_added,
            "version": self.version,
            "media_type": STIX_MEDIA,
        }


def _version(obj: dict[str, Any], date_added: str) -> str:
    return str(obj.get("modified") or obj.get("created") or date_added)


def _entries(request: Request, call: PartnerCall, c: Collection) -> list[Entry]:
    if c.kind != "outbox":
        return []
    home = request.app.state.fundtrail.home
    with call.db.session() as session:
        packages = (
            session.execute(
                select(SharedPackage)
                .join(SharingAgreement)
                .where(
                    SharingAgreement.name == c.agreement,
                    SharedPackage.direction == "sent",
                    SharedPackage.transport == OUTBOX_TRANSPORT,
                )
                .order_by(SharedPackage.created_at)
            )
            .scalars()
            .all()
        )
        files = [(format_timestamp(p.created_at), p.stored_path) for p in packages if p.stored_path]
    seen: set[tuple[str, str]] = set()
    out = []
    for added, path in files:
        bundle = json.loads((Path(home) / path).read_text(encoding="utf-8"))
        for obj in bundle["objects"]:
            version = _version(obj, added)
            if (obj["id"], version) in seen:  # an object keeps the date it was first added
                continue
            seen.add((obj["id"], version))
            out.append(Entry(added, obj["id"], version, obj))
    out.sort(key=lambda e: (e.date_added, e.id, e.version))
    return out


def _filter(entries: list[Entry], params: dict[str, str]) -> list[Entry]:
    if params.get("added_after"):
        after = parse_timestamp(params["added_after"])
        entries = [e for e in entries if parse_timestamp(e.date_added) > after]
    if params.get("match[id]"):
        ids = set(params["match[id]"].split(","))
        entries = [e for e in entries if e.id in ids]
    if params.get("match[type]"):
        types = set(params["match[type]"].split(","))
        entries = [e for e in entries if e.obj.get("type") in types]
    if params.get("match[spec_version]"):
        specs = set(params["match[spec_version]"].split(","))
        entries = [e for e in entries if str(e.obj.get("spec_version", "2.1")) in specs]
    wanted = set((params.get("match[version]") or "last").split(","))
    if "all" in wanted:
        return entries
    by_id: dict[str, list[Entry]] = {}
    for e in entries:
        by_id.setdefault(e.id, []).append(e)
    keep: list[Entry] = []
    for versions in by_id.values():
        ordered = sorted(
            versions, key=lambda e: parse_timestamp(e.version) if "T" in e.version else e.version
        )
        if "last" in wanted:
            keep.append(ordered[-1])
        if "first" in wanted and ordered[0] not in keep:
            keep.append(ordered[0])
        keep.extend(e for e in versions if e.version in wanted and e not in keep)
    keep.sort(key=lambda e: (e.date_added, e.id, e.version))
    return keep


FILTERS = ("added_after", "match[id]", "match[type]", "match[version]", "match[spec_version]")


def _page(
    request: Request, entries: list[Entry], limit: int | None, next_token: str | None
) -> tuple[list[Entry], bool, str | None]:
    params = {k: request.query_params[k] for k in FILTERS if k in request.query_params}
    start = 0
    if next_token:
        try:
            token = json.loads(base64.urlsafe_b64decode(next_token.encode()))
            start = int(token["start"])
        except (ValueError, KeyError, TypeError):
            raise InputError("next: not a token this server gave") from None
        if token.get("params") != params:
            raise InputError("next: the filters changed since the first page")
    size = min(limit or DEFAULT_PAGE, MAX_PAGE)
    page = entries[start : start + size]
    more = start + size < len(entries)
    token_out = (
        base64.urlsafe_b64encode(json.dumps({"start": start + size, "params": params}).encode()).decode()
        if more
        else None
    )
    return page, more, token_out


def _headers(page: list[Entry]) -> dict[str, str]:
    if not page:
        return {}
    return {"X-TAXII-Date-Added-First": page[0].date_added, "X-TAXII-Date-Added-Last": page[-1].date_added}


Limit = Annotated[int | None, Query(ge=1, le=100_000, description="At most this many objects.")]
Next = Annotated[str | None, Query(alias="next", max_length=2000, description="The next page.")]


@router.get("/{api_root}/collections/{cid}/objects/", operation_id="taxii_objects", summary="Objects")
def get_objects(
    api_root: str, cid: str, request: Request, call: Partner, limit: Limit = None, next_: Next = None
) -> JSONResponse:
    """The collection's objects, oldest first, paged."""
    _check_root(api_root)
    c = _collection(call, cid)
    if c.kind != "outbox":
        raise NotFoundError("readable collection", cid)
    entries = _filter(_entries(request, call, c), dict(request.query_params))
    page, more, token = _page(request, entries, limit, next_)
    body: dict[str, Any] = {"more": more, "objects": [e.obj for e in page]}
    if token:
        body["next"] = token
    return taxii(body, headers=_headers(page))


@router.get("/{api_root}/collections/{cid}/manifest/", operation_id="taxii_manifest", summary="Manifest")
def get_manifest(
    api_root: str, cid: str, request: Request, call: Partner, limit: Limit = None, next_: Next = None
) -> JSONResponse:
    """The manifest of the collection's objects."""
    _check_root(api_root)
    c = _collection(call, cid)
    entries = _filter(_entries(request, call, c), dict(request.query_params))
    page, more, token = _page(request, entries, limit, next_)
    body: dict[str, Any] = {"more": more, "objects": [e.manifest() for e in page]}
    if token:
        body["next"] = token
    return taxii(body, headers=_headers(page))


@router.get("/{api_root}/collections/{cid}/objects/{oid}/", operation_id="taxii_object", summary="One object")
def get_object(api_root: str, cid: str, oid: str, request: Request, call: Partner) -> JSONResponse:
    """One object (its last version unless ``match[version]`` says otherwise)."""
    _check_root(api_root)
    c = _collection(call, cid)
    params = dict(request.query_params)
    params["match[id]"] = oid
    entries = _filter(_entries(request, call, c), params)
    if not entries:
        raise NotFoundError("object", oid)
    return taxii({"more": False, "objects": [e.obj for e in entries]}, headers=_headers(entries))


@router.get(
    "/{api_root}/collections/{cid}/objects/{oid}/versions/",
    operation_id="taxii_versions",
    summary="An object's versions",
)
def get_versions(api_root: str, cid: str, oid: str, request: Request, call: Partner) -> JSONResponse:
    """Every version of one object."""
    _check_root(api_root)
    c = _collection(call, cid)
    entries = [e for e in _entries(request, call, c) if e.id == oid]
    if not entries:
        raise NotFoundError("object", oid)
    return taxii({"more": False, "versions": sorted({e.version for e in entries})}, headers=_headers(entries))


@router.post(
    "/{api_root}/collections/{cid}/objects/",
    operation_id="taxii_add_objects",
    status_code=202,
    summary="Add a package",
)
def add_objects(api_root: str, cid: str, request: Request, call: Partner) -> JSONResponse:
    """Import the package the envelope holds: every object, or none."""
    _check_root(api_root)
    c = _collection(call, cid)
    if c.kind != "inbox":
        raise NotFoundError("writable collection", cid)
    body = call.json()
    objects = body.get("objects") if isinstance(body, dict) else None
    if not isinstance(objects, list) or not objects:
        raise InputError("the envelope must hold objects")
    from fundtrail.sharing.service import import_package, received_from_objects, record_rejection

    now = datetime.now(UTC)
    ids = [str(o.get("id")) for o in objects if isinstance(o, dict)]
    received = None
    try:
        received = received_from_objects(objects, f"TAXII collection {c.id}")
        with operation(call.db, None, user_required=False) as ctx:
            import_package(ctx, received, transport="taxii", actor=call.actor)
        successes = [
            {"id": i, "version": _version(o, format_timestamp(now))}
            for i, o in zip(ids, objects, strict=False)
        ]
        failures: list[dict[str, Any]] = []
    except FundTrailError as error:
        with operation(call.db, None, user_required=False) as ctx:
            record_rejection(
                ctx,
                f"TAXII collection {c.id}",
                error,
                actor=call.actor,
                transport="taxii",
                envelope=received.envelope if received else None,
            )
        successes = []
        failures = [{"id": i, "message": str(error)} for i in ids]
    status: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "status": "complete",
        "request_timestamp": format_timestamp(now),
        "total_count": len(ids),
        "success_count": len(successes),
        "successes": successes,
        "failure_count": len(failures),
        "failures": failures,
        "pending_count": 0,
        "pendings": [],
    }
    sharing_state(request).statuses.put(status["id"], {"partner": call.key_id, "status": status})
    return taxii(status, status=202)


@router.get("/{api_root}/status/{sid}/", operation_id="taxii_status", summary="Status of an addition")
def get_status(api_root: str, sid: str, request: Request, call: Partner) -> JSONResponse:
    """How a POST of the calling partner went."""
    _check_root(api_root)
    found = sharing_state(request).statuses.get(sid)
    if found is None or found["partner"] != call.key_id:
        raise NotFoundError("status", sid)
    return taxii(found["status"])


__all__ = ["router"]
