"""Alerts across borders, with two instances: EE shares a watch with SC; SC's watcher sees the funds reach an
exchange in SC, alerts there and tells EE, whose instance records the alert and drafts the freeze by MLA."""

from __future__ import annotations

from typing import Any

import yaml
from sqlalchemy import select

from fundtrail.cases.models import LegalRequest
from fundtrail.store import ChainStore
from fundtrail.watch.models import Watch
from fundtrail.watch.runner import Watcher
from fundtrail.watch.service import add_watch, alert_doc, list_alerts
from fundtrail.watch.sharing import share_watch
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


def exchange_in(home: Any, country: str) -> None:
    """The home's tags learn where Northwind Exchange is (an ActorPack)."""
    from fundtrail.intel.tagpacks import import_actorpack

    path = home / "actors.actorpack.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "title": "Actors",
                "creator": "Test",
                "lastmod": "2024-01-01",
                "actors": [
                    {
                        "id": "northwind",
                        "label": "Northwind Exchange",
                        "uri": "https://northwind.example",
                        "categories": ["exchange"],
                        "jurisdictions": [country],
                    }
                ],
            }
        )
    )
    with ChainStore.open_home(home) as store:
        import_actorpack(store, path)


def test_a_shared_watch_alerts_the_partner_and_the_sender(linked: Any) -> None:  # noqa: F811
    a, b = linked.a, linked.b
    exchange_in(b.home, "SC")
    number = a.cases["ransom"]
    with a.op("ivo") as ctx:
        watch = add_watch(ctx, "btc", [R1, R2], case=number).id
        shared = share_watch(ctx, watch, "ee-sc", clients=linked.clients)
        remote = int(shared.remote_ref or 0)
    with b.op() as ctx:
        theirs = ctx.session.get(Watch, remote)
        assert theirs is not None and theirs.source == "partner" and theirs.case_id is None
        assert theirs.case_ref and number not in theirs.case_ref and theirs.marking == "TLP:AMBER"
    report = Watcher(b.home, clients=linked.clients).cycle()
    # SC alerts only where the funds reach an exchange in SC, and tells EE about each
    assert sorted((x["kind"], x["address"], x["jurisdiction"]) for x in report.alerts) == sorted(
        [("at_service", D1, "SC"), ("at_service", D2, "SC")]
    )
    assert report.delivered["partner"] == 2
    assert Watcher(b.home, clients=linked.clients).cycle().delivered["partner"] == 0  # told once
    with a.op("ivo") as ctx:
        told = [alert_doc(x) for x in list_alerts(ctx, case=number)]
        assert sorted((x["kind"], x["address"], x["origin"]) for x in told) == sorted(
            [("at_service", D1, "partner"), ("at_service", D2, "partner")]
        )
        for doc in told:
            req = ctx.session.execute(
                select(LegalRequest).where(LegalRequest.number == doc["request"])
            ).scalar_one()
            assert (req.type, req.state, req.recipient_jurisdiction, req.instrument) == (
                "freeze",
                "draft",
                "SC",
                "warsaw-art21-freeze",
            )
    assert a.audit_intact() and b.audit_intact()
    assert "cooperation.watch.alert" in a.audit_actions() and "cooperation.watch.receive" in b.audit_actions()
