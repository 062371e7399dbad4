"""Sanctions screening of every trace: each flow and endpoint against the imported lists as they stood on
the day of its transaction (the world of ``test_trace_conversions``: all its transactions are of
1970-01-01)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from test_trace_conversions import BRIDGE_ETH, DAVE, EXCH, PAIR, RECEIVER, SRC, VAULT, build, trace

from fundtrail.intel.sanctions import DEFAULT_LIST_NAME, import_list
from fundtrail.store import ChainStore

TX_DAY = date(1970, 1, 1)


@pytest.fixture()
def world(store: ChainStore) -> ChainStore:
    build(store)
    return store


def listed(store: ChainStore, tmp_path: Path, asset: str, day: date, *addresses: str,
           name: str = DEFAULT_LIST_NAME) -> None:
    path = tmp_path / f"{day.isoformat()}-{asset}" / f"sanctioned_addresses_{asset}.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text("\n".join(addresses) + "\n")
    import_list(store, path, listed_on=day, list_name=name)


def flagged(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(x.get("chain"), x.get("from", x.get("address")), x.get("to"), x["sanctions_lists"],
             x["sanctions"]) for x in doc["flows"] + doc["endpoints"] if x.get("sanctioned")]


def test_a_listing_after_the_transaction_does_not_flag_it(world: ChainStore, tmp_path: Path) -> None:
    listed(world, tmp_path, "USDT", date(1970, 1, 2), RECEIVER)
    assert flagged(trace(world).to_dict()) == []
    listed(world, tmp_path, "USDT", TX_DAY, RECEIVER)
    hit = [{"address": RECEIVER, "list": DEFAULT_LIST_NAME, "listed_on": "1970-01-01"}]
    assert flagged(trace(world).to_dict()) == [("bsc", RECEIVER, EXCH, [DEFAULT_LIST_NAME], hit)]


def test_a_delisted_address_is_flagged_for_what_it_did_while_listed(world: ChainStore,
                                                                     tmp_path: Path) -> None:
    listed(world, tmp_path, "USDT", TX_DAY, RECEIVER, DAVE)
    listed(world, tmp_path, "USDT", date(1999, 1, 1), DAVE)  # RECEIVER delisted long after the trace
    doc = trace(world).to_dict()
    assert [(f[1], f[2]) for f in flagged(doc)] == [(DAVE, PAIR), (DAVE, BRIDGE_ETH), (RECEIVER, EXCH)]
    # a separate list, in force, names the endpoint itself
    listed(world, tmp_path, "USDT", TX_DAY, EXCH, name="EU")
    doc = trace(world).to_dict()
    assert [(e["address"], e["sanctions_lists"]) for e in doc["endpoints"]] == [(EXCH, ["EU"])]
    assert doc["flows"][-1]["sanctions_lists"] == ["EU", DEFAULT_LIST_NAME]


def test_a_trace_that_crossed_nothing_is_screened_too(world: ChainStore, tmp_path: Path) -> None:
    listed(world, tmp_path, "XBT", TX_DAY, VAULT)
    doc = trace(world, follow_conversions=False).to_dict()
    hit = [{"address": VAULT, "list": DEFAULT_LIST_NAME, "listed_on": "1970-01-01"}]
    assert flagged(doc) == [(None, SRC, VAULT, [DEFAULT_LIST_NAME], hit), (None, VAULT, None,
                                                                         [DEFAULT_LIST_NAME], hit)]


def test_nothing_flagged_leaves_the_document_as_it_was(world: ChainStore, tmp_path: Path) -> None:
    before = [json.dumps(trace(world, **o).to_dict(), sort_keys=True)
              for o in ({}, {"follow_conversions": False}, {"direction": "backward"})]
    listed(world, tmp_path, "XBT", TX_DAY, "1BoatSLRHtKNngkdXEeobR76b53LETtpyT")
    listed(world, tmp_path, "USDT", date(1970, 1, 2), RECEIVER)  # listed only after the transactions
    after = [trace(world, **o) for o in ({}, {"follow_conversions": False}, {"direction": "backward"})]
    assert [json.dumps(r.to_dict(), sort_keys=True) for r in after] == before
    assert "sanctioned" not in json.dumps([r.to_dict() for r in after])


def test_screening_does_not_build_the_flows_of_a_trace_nobody_asks_for(world: ChainStore,
                                                                       tmp_path: Path) -> None:
    listed(world, tmp_path, "XBT", TX_DAY, "1BoatSLRHtKNngkdXEeobR76b53LETtpyT")
    result = trace(world, follow_conversions=False)
    assert "flows" not in result.__dict__  # one set lookup per address, when the flows are built
    assert len(result.flows) == 1 and not result.flows[0].sanctioned


def test_an_endpoint_sanctioned_since_the_funds_arrived_is_flagged_where_they_rest(
    world: ChainStore, tmp_path: Path
) -> None:
    listed(world, tmp_path, "USDT", date(1999, 1, 1), EXCH)  # listed long after the funds arrived
    doc = trace(world).to_dict()
    assert all("sanctioned" not in f for f in doc["flows"])  # no flow was sanctioned on its day
    (end,) = [e for e in doc["endpoints"] if e["address"] == EXCH]
    assert end["sanctions_lists"] == [DEFAULT_LIST_NAME]
    assert end["sanctions"] == [{"address": EXCH, "list": DEFAULT_LIST_NAME, "listed_on": "1999-01-01"}]
