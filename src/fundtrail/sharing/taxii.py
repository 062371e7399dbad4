"""Publishing packages to and pulling them from TAXII 2.1 collections (``taxii2-client``).

A STIX package travels as its objects: the signed ``fundtrail-package`` envelope and every object it
pins. Servers split a package into objects, version them and may hand them back in another order, so
pulling reassembles each package from the envelopes found: for every pinned object, the version whose
canonical JSON has the pinned SHA-256 (asked with ``match[version]=all``), fetched by id when an earlier
package already brought it (``added_after`` leaves those out). Each package is then imported like a
file: verified whole, or rejected and audited with nothing stored.

Servers keep the first copy of an immutable object (an SCO or a marking definition has no
``modified``): publishing an object the collection already holds is reported as a failure by some
servers (OASIS ``medallion`` does), which is harmless when the held copy is the same. :func:`publish`
checks exactly that, and fails if the collection holds a different object under the same id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import Collection, as_pages

from fundtrail.audit.keys import AgencyKey
from fundtrail.errors import ConflictError, FundTrailError, IntegrityError, SourceUnavailableError
from fundtrail.sharing.envelope import object_sha256
from fundtrail.sharing.signing import requests_auth
from fundtrail.sharing.stix import PACKAGE_TYPE

log = logging.getLogger(__name__)

PAGE = 100
"""Objects asked per page (medallion's default page size: asking for more makes taxii2-client warn)."""


@dataclass(frozen=True)
class TaxiiTarget:
    """A TAXII 2.1 collection and how to authenticate to it: user and password, or the agency key."""

    url: str
    user: str | None = None
    password: str | None = None
    key: AgencyKey | None = field(default=None, repr=False)

    def collection(self) -> Collection:
        """A ``taxii2-client`` collection (basic auth, or FundTrail's signed requests)."""
        url = self.url if self.url.endswith("/") else self.url + "/"
        if self.user:
            return Collection(url, user=self.user, password=self.password or "")
        if self.key is None:
            raise IntegrityError("a TAXII collection needs a user and password, or the agency key")
        return Collection(url, auth=requests_auth(self.key))


def _unavailable(url: str, error: Exception) -> SourceUnavailableError:
    return SourceUnavailableError(url, f"TAXII: {error}")


@dataclass
class Published:
    """What a TAXII server said about a package."""

    status_id: str
    total: int
    added: int
    already_held: int

    def to_dict(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "status": self.status_id,
            "objects": self.total,
            "added": self.added,
            "already_held": self.already_held,
        }


def publish(target: TaxiiTarget, objects: list[dict[str, Any]]) -> Published:
    """Add a package's objects to the collection; IntegrityError when the collection keeps other objects
    under the same ids (the package could not be verified from it)."""
    import requests

    try:
        with target.collection() as collection:
            status = collection.add_objects(
                {"objects": objects}, wait_for_completion=True, poll_interval=1, timeout=60
            )
            failures = [f.get("id") for f in (status.failures or [])]
            by_id = {o["id"]: o for o in objects}
            for oid in failures:
                held = collection.get_object(oid, version="all").get("objects", [])
                if oid not in by_id or object_sha256(by_id[oid]) not in {object_sha256(h) for h in held}:
                    raise IntegrityError(
                        f"the collection keeps another object under id {oid}; the package would "
                        f"not verify from it"
                    )
    except (requests.RequestException, TAXIIServiceException) as error:
        raise _unavailable(target.url, error) from None
    if status.status != "complete" or status.pending_count:
        raise SourceUnavailableError(
            target.url, f"TAXII: the addition is {status.status} ({status.pending_count} pending)"
        )
    log.info("published %d objects to %s (%d were already there)", len(objects), target.url, len(failures))
    return Published(status.id, len(objects), status.success_count, len(failures))


def pull_objects(target: TaxiiTarget, *, added_after: str | None = None) -> Iterator[dict[str, Any]]:
    """Every version of every object of the collection (added after a time, when given), page by page."""
    import requests

    try:
        with target.collection() as collection:
            kwargs: dict[str, Any] = {"version": "all"}
            if added_after:
                kwargs["added_after"] = added_after
            for envelope in as_pages(collection.get_objects, per_request=PAGE, **kwargs):
                yield from envelope.get("objects", []) or []
    except (requests.RequestException, TAXIIServiceException) as error:
        raise _unavailable(target.url, error) from None


def fetch_versions(target: TaxiiTarget, object_id: str) -> list[dict[str, Any]]:
    """Every version of one object the collection holds (none when it holds none)."""
    import requests

    try:
        with target.collection() as collection:
            return list(collection.get_object(object_id, version="all").get("objects", []) or [])
    except requests.HTTPError as error:
        if error.response is not None and error.response.status_code == 404:
            return []
        raise _unavailable(target.url, error) from None
    except (requests.RequestException, TAXIIServiceException) as error:
        raise _unavailable(target.url, error) from None


def assemble(target: TaxiiTarget, pulled: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """``(package id, objects)`` of each package among the pulled objects, its pinned versions picked by hash.

    A package whose pinned objects cannot all be found is still yielded (with what was found), so that
    its import fails on the missing objects and is audited like any other bad package.
    """
    by_hash: dict[tuple[str, str], dict[str, Any]] = {}
    for obj in pulled:
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            by_hash.setdefault((obj["id"], object_sha256(obj)), obj)
    envelopes = [o for o in pulled if isinstance(o, dict) and o.get("type") == PACKAGE_TYPE]
    for envelope in envelopes:
        pinned = ((envelope.get("envelope") or {}).get("contents") or {}).get("objects") or {}
        objects = [envelope]
        for oid, digest in sorted(pinned.items()):
            found = by_hash.get((oid, digest))
            if found is None:
                for candidate in fetch_versions(target, oid):
                    by_hash.setdefault((oid, object_sha256(candidate)), candidate)
                found = by_hash.get((oid, digest))
            if found is not None:
                objects.append(found)
        package_id = str(envelope.get("id", "")).removeprefix(f"{PACKAGE_TYPE}--")
        yield package_id, objects


def is_already_received(error: FundTrailError) -> bool:
    """True for the refusal of a package that was received before (pulling again is harmless)."""
    return isinstance(error, ConflictError)


@dataclass
class PullResult:
    """What a pull stored, skipped and rejected."""

    imported: list[dict[str, Any]] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    objects: int = 0
    watches: list[dict[str, Any]] = field(default_factory=list)
    """Shared watches received (``fundtrail-watch`` objects), as ``{id, watch, points}``."""

    def to_dict(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "objects": self.objects,
            "imported": self.imported,
            "already": self.already,
            "rejected": self.rejected,
            "watches": self.watches,
        }


PulledHook = Callable[[Any, "TaxiiTarget", list[dict[str, Any]], str | None, "PullResult"], None]
"""What another layer does with the objects of a pull: (case database, target, objects, user, result)."""


def pull_packages(
    home: Any,
    target: TaxiiTarget,
    *,
    username: str | None,
    added_after: str | None = None,
    store_opener: Any = None,
    also: Sequence[PulledHook] = (),
) -> PullResult:
    """Pull the collection and import every package in it, each in its own transaction; then hand the
    pulled objects to each of ``also`` (the watch layer takes partners' shared watches this way)."""
    from fundtrail.cases.context import operation
    from fundtrail.cases.db import CaseDB
    from fundtrail.sharing.service import import_package, received_from_objects, record_rejection

    result = PullResult()
    pulled = list(pull_objects(target, added_after=added_after))
    result.objects = len(pulled)
    db = CaseDB.open(home)
    try:
        for package_id, objects in assemble(target, pulled):
            received = None
            try:
                received = received_from_objects(objects, f"TAXII {target.url}")
                with operation(db, username) as ctx:
                    done = import_package(ctx, received, store_opener=store_opener, transport="taxii")
                result.imported.append(done.to_dict())
            except FundTrailError as error:
                if is_already_received(error):
                    result.already.append(package_id)
                    continue
                with operation(db, username, user_required=False) as ctx:
                    record_rejection(
                        ctx,
                        f"TAXII {target.url}",
                        error,
                        transport="taxii",
                        envelope=received.envelope if received else None,
                    )
                result.rejected.append({"package_id": package_id, "problem": str(error)})
        for hook in also:
            hook(db, target, pulled, username, result)
    finally:
        db.close()
    return result
