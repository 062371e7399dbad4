"""Alerts across borders over TAXII 2.1: EE publishes a shared watch as a signed ``fundtrail-watch`` STIX
object in the agreement's collection (OASIS medallion, as the sharing tests run it); SC's ``share pull``
keeps it as the same received watch as the signed API does; SC's alerts go back to EE over the signed API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from taxii2client.v21 import Collection
from typer.testing import CliRunner

from fundtrail.cli.watch import app
from fundtrail.errors import InputError
from fundtrail.sharing.stix import WATCH_TYPE
from fundtrail.sharing.taxii import TaxiiTarget, pull_packages
from fundtrail.watch.models import Watch
from fundtrail.watch.runner import Watcher
from fundtrail.watch.service import add_watch, alert_doc, list_alerts
from fundtrail.watch.sharing import pull_watches, share_watch
from sharing.conftest import (  # noqa: F401  (the two-instance fixtures)
    D1,
    D2,
    R1,
    R2,
    chain_template,
    linked,
    pair,
    pair_template,
)
from sharing.taxii_servers import medallion

from .test_cross_border import exchange_in


@pytest.fixture()
def hub(tmp_path: Any) -> Iterator[Any]:
    with medallion(tmp_path / "medallion") as server:
        yield server


def test_a_watch_shared_over_taxii_alerts_the_partner_and_the_sender(linked: Any, hub: Any) -> None:  # noqa: F811
    a, b = linked.a, linked.b
    target = TaxiiTarget(hub.collection, hub.user, hub.password)
    exchange_in(b.home, "SC")
    number = a.cases["ransom"]
    with a.op("ivo") as ctx:
        watch = add_watch(ctx, "btc", [R1, R2], case=number).id
        with pytest.raises(InputError, match="TAXII collection"):
            share_watch(ctx, watch, "ee-sc", transport="taxii")
    with a.op("ivo") as ctx:
        shared = share_watch(ctx, watch, "ee-sc", transport="taxii", taxii=target)
        assert (shared.remote_ref or "").startswith(f"{WATCH_TYPE}--")
    with Collection(hub.collection, user=hub.user, password=hub.password) as collection:
        (obj,) = [o for o in collection.get_objects()["objects"] if o["type"] == WATCH_TYPE]
    assert obj["watch"]["marking"] == "TLP:AMBER" and number not in json.dumps(obj)
    assert obj["signature"]["key_id"] == a.key.key_id

    pulled = pull_packages(b.home, target, username="lia", also=(pull_watches,))
    assert [w["points"] for w in pulled.watches] == [2] and not pulled.rejected
    again = pull_packages(b.home, target, username="lia", also=(pull_watches,))  # kept once
    assert not again.watches and obj["id"] in again.already
    assert b.count(Watch, source="partner") == 1
    with b.op() as ctx:
        theirs = ctx.session.get(Watch, pulled.watches[0]["watch"])
        assert theirs is not None and theirs.remote_ref == str(watch) and theirs.case_id is None
        assert theirs.case_ref and number not in theirs.case_ref and theirs.marking == "TLP:AMBER"

    report = Watcher(b.home, clients=linked.clients).cycle()  # alerts go back over the signed API
    assert sorted((x["kind"], x["address"], x["jurisdiction"]) for x in report.alerts) == sorted(
        [("at_service", D1, "SC"), ("at_service", D2, "SC")]
    )
    assert report.delivered["partner"] == 2
    with a.op("ivo") as ctx:
        told = [alert_doc(x) for x in list_alerts(ctx, case=number)]
        assert sorted((x["address"], x["origin"]) for x in told) == sorted([(D1, "partner"), (D2, "partner")])
        assert all(x["request"] for x in told)
    assert a.audit_intact() and b.audit_intact()
    assert "cooperation.watch.receive" in b.audit_actions()


def test_a_forged_watch_object_is_rejected(linked: Any, hub: Any) -> None:  # noqa: F811
    a, b = linked.a, linked.b
    target = TaxiiTarget(hub.collection, hub.user, hub.password)
    with a.op("ivo") as ctx:
        watch = add_watch(ctx, "btc", [R1], case=a.cases["ransom"]).id
    args = ["share", str(watch), "--agreement", "ee-sc", "--home", str(a.home), "--as", "ivo", "-f", "json"]
    taxii = ["--taxii", hub.collection, "--taxii-user", hub.user, "--taxii-password", hub.password]
    done = CliRunner().invoke(app, [*args, "--transport", "taxii", *taxii])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["remote_ref"].startswith(f"{WATCH_TYPE}--")
    with Collection(hub.collection, user=hub.user, password=hub.password) as collection:
        (obj,) = [o for o in collection.get_objects()["objects"] if o["type"] == WATCH_TYPE]
        forged = json.loads(json.dumps(obj))
        forged["watch"]["points"] = [R2]
        forged["modified"] = "2099-01-01T00:00:00.000Z"
        collection.add_objects({"objects": [forged]})
    pulled = pull_packages(b.home, target, username="lia", also=(pull_watches,))
    assert not pulled.watches and "not signed by" in pulled.rejected[0]["problem"]
    assert b.count(Watch, source="partner") == 0 and "share.reject" in b.audit_actions()
