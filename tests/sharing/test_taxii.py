"""TAXII 2.1: packages through OASIS medallion; FundTrail's own TAXII endpoints read with taxii2-client."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

from fundtrail.domain.sharing import format_timestamp
from fundtrail.errors import IntegrityError
from fundtrail.sharing.models import SharedObject, SharedPackage, SharingAgreement
from fundtrail.sharing.taxii import TaxiiTarget, publish, pull_packages
from fundtrail.store import ChainStore

from .taxii_servers import medallion, served
from .test_packages import export


@pytest.fixture()
def hub(tmp_path) -> Iterator[Any]:
    """A fresh medallion (its memory backend starts empty)."""
    with medallion(tmp_path / "medallion") as server:
        yield server


def hub_target(hub: Any) -> TaxiiTarget:
    return TaxiiTarget(hub.collection, hub.user, hub.password)


def pull(b: Any, target: TaxiiTarget, **kw: Any) -> Any:
    return pull_packages(
        b.home, target, username="lia", store_opener=lambda: ChainStore.open_home(b.home), **kw
    )


def objects_of(path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["objects"]


def test_packages_travel_through_medallion(pair, hub, tmp_path) -> None:
    a, b = pair
    target = hub_target(hub)
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    export(a, "stix", first)
    published = publish(target, objects_of(first))
    assert published.added == published.total
    time.sleep(0.01)
    between = format_timestamp(datetime.now(UTC))
    export(a, "stix", second)
    again = publish(target, objects_of(second))
    assert again.already_held > 0  # the same wallets and markings: medallion keeps the first copy

    later = pull(b, target, added_after=between)  # the second package's shared objects were added before
    assert [r["package_id"] for r in later.imported] == [
        json.loads(second.read_text())["objects"][-1]["id"].removeprefix("fundtrail-package--")
    ]
    everything = pull(b, target)
    assert len(everything.imported) == 1 and len(everything.already) == 1 and not everything.rejected
    assert b.count(SharedPackage, direction="received", transport="taxii") == 2


def test_a_package_the_hub_holds_differently_is_rejected(pair, hub, tmp_path) -> None:
    """Someone put another copy of one of A's wallets on the hub first: A cannot publish a package that
    would verify, and a partner pulling the package stores nothing of it."""
    from taxii2client.v21 import Collection

    from fundtrail.sharing.stix import CRYPTO_EXTENSION

    a, b = pair
    out = tmp_path / "p.json"
    export(a, "stix", out)
    objects = objects_of(out)
    wallet = next(o for o in objects if o["type"] == "cryptocurrency-wallet")
    forged = json.loads(json.dumps(wallet))
    forged["extensions"][CRYPTO_EXTENSION]["chain"] = "ltc"
    with Collection(hub.collection, user=hub.user, password=hub.password) as collection:
        collection.add_objects({"objects": [forged]})
    with pytest.raises(IntegrityError, match="keeps another object"):
        publish(hub_target(hub), objects)
    result = pull(b, hub_target(hub))
    package_id = next(o for o in objects if o["type"] == "fundtrail-package")["id"].split("--")[1]
    assert package_id in [r["package_id"] for r in result.rejected]
    assert b.count(SharedPackage, package_id=package_id) == 0
    assert "share.reject" in b.audit_actions()


@pytest.fixture()
def a_served(pair) -> Iterator[tuple[Any, Any, str]]:
    from fundtrail.api.app import create_app

    from .conftest import settings

    a, b = pair
    app = create_app(a.home, settings())
    with served(app) as base:
        yield a, b, base
    app.state.fundtrail.close()


def test_fundtrail_taxii_endpoints_with_taxii2_client(a_served, tmp_path) -> None:
    import requests
    from taxii2client.v21 import Server, as_pages

    from fundtrail.sharing.service import export_case
    from fundtrail.sharing.signing import requests_auth
    from fundtrail.sharing.taxii_server import OUTBOX_TRANSPORT, collection_id

    a, b, base = a_served
    with a.op("ivo") as ctx:
        first = export_case(ctx, a.cases["ransom"], "ee-sc", "stix", None, transport=OUTBOX_TRANSPORT)
    with pytest.raises(requests.HTTPError):  # unsigned
        Server(f"{base}/taxii2/").refresh()
    server = Server(f"{base}/taxii2/", auth=requests_auth(b.key))
    (root,) = server.api_roots
    assert {c.id for c in root.collections} == {
        collection_id("outbox", "ee-sc"),
        collection_id("inbox", "ee-sc"),
    }
    outbox = next(c for c in root.collections if c.can_read)
    time.sleep(0.01)
    with a.op("ivo") as ctx:
        second = export_case(ctx, a.cases["ransom"], "ee-sc", "stix", None, transport=OUTBOX_TRANSPORT)
    pages = list(as_pages(outbox.get_objects, per_request=7, version="all"))
    assert len(pages) > 2 and all(len(p["objects"]) <= 7 for p in pages)
    served_ids = [o["id"] for p in pages for o in p["objects"]]
    assert f"fundtrail-package--{first.package_id}" in served_ids
    assert f"fundtrail-package--{second.package_id}" in served_ids
    after = first.envelope.created  # the package's publication time
    newer = outbox.get_objects(added_after=after, version="all")["objects"]
    assert f"fundtrail-package--{first.package_id}" not in [o["id"] for o in newer]
    assert f"fundtrail-package--{second.package_id}" in [o["id"] for o in newer]
    manifest = outbox.get_manifest()["objects"]
    assert all(m["media_type"] == "application/stix+json;version=2.1" for m in manifest)

    result = pull_packages(b.home, TaxiiTarget(outbox.url, key=b.key), username="lia")
    assert len(result.imported) == 2 and not result.rejected


def test_a_partner_adds_a_package_to_the_inbox_collection(a_served, tmp_path) -> None:
    from taxii2client.v21 import Collection

    from fundtrail.sharing.signing import requests_auth
    from fundtrail.sharing.taxii_server import collection_id

    a, b, base = a_served
    with b.db() as db, db.transaction() as s:  # B sends its case to A: B's agreement names A's endpoint
        s.execute(update(SharingAgreement).values(partner_endpoint=base))
    from fundtrail.sharing.service import export_case

    out = tmp_path / "from-b.json"
    with b.op("ivo") as ctx:
        export_case(ctx, b.cases["exchange"], "sc-ee", "stix", out)
    url = f"{base}/taxii2/fundtrail/collections/{collection_id('inbox', 'ee-sc')}/"
    with Collection(url, auth=requests_auth(b.key)) as inbox:
        bad = objects_of(out)
        next(o for o in bad if o["type"] == "report")["name"] = "changed"
        status = inbox.add_objects({"objects": bad})
        assert status.failure_count == len(bad) and status.success_count == 0
        assert a.count(SharedPackage, direction="received") == 0 and a.count(SharedObject) == 0
        status = inbox.add_objects({"objects": objects_of(out)})
        assert status.status == "complete" and status.success_count == len(objects_of(out))
    assert a.count(SharedPackage, direction="received", transport="taxii") == 1
