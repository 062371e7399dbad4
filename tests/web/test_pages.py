"""Dashboard pages rendered by the server (no browser): sign-in, cases, a case, audit, recovery, search."""

from __future__ import annotations

import html
import json
import re

import pytest

PASSWORD = "correct horse battery staple"


@pytest.fixture()
def signed_in(agency):
    """Sign a user in through the form; returns a function doing that for a user name."""
    auth = agency.app.state.fundtrail.auth

    def sign_in(user: str):
        auth.set_password(user, PASSWORD)
        agency.client.cookies.clear()
        r = agency.client.post("/login", data={"username": user, "password": PASSWORD, "next": "/cases"},
                               follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/cases"
        return agency.client

    return sign_in


def test_pages_need_a_sign_in(agency) -> None:
    r = agency.client.get("/cases", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Fcases")
    assert "Sign in" in agency.client.get("/login").text


def test_wrong_password_shows_the_form_again(agency) -> None:
    r = agency.client.post("/login", data={"username": "ana", "password": "nope"})
    assert r.status_code == 401 and "Wrong user name or password" in r.text


def test_sign_in_never_redirects_to_another_site(agency, signed_in) -> None:
    agency.app.state.fundtrail.auth.set_password("ana", PASSWORD)
    r = agency.client.post("/login", data={"username": "ana", "password": PASSWORD, "next": "//evil.example"},
                           follow_redirects=False)
    assert r.headers["location"] == "/"


def test_case_list_and_case_page(agency, signed_in) -> None:
    client = signed_in("ivo")
    cyber, fraud = agency.cases["cyber"], agency.cases["fraud"]
    page = client.get("/cases").text
    assert cyber in page and fraud not in page and "Ransomware payments" in page
    case = client.get(f"/cases/{cyber}")
    assert case.status_code == 200
    assert "Legal requests and their clocks" in case.text and "Draft a new request" in case.text
    other = client.get(f"/cases/{fraud}")
    assert other.status_code == 404 and "does not exist" in other.text


def test_approve_button_only_for_a_supervisor_who_did_not_draft(agency, signed_in) -> None:
    cyber = agency.cases["cyber"]
    agency.client.post(f"/api/cases/{cyber}/requests", headers=agency.headers("ivo", reason="funds arrived"),
                       json={"type": "freeze", "recipient": "Northwind Exchange"})
    supervisor = signed_in("sue").get(f"/cases/{cyber}").text
    assert re.search(r'data-action-url="/api/requests/[A-Z0-9-]+-R01/approve"', supervisor)
    analyst = signed_in("ana").get(f"/cases/{cyber}").text
    assert "/approve" not in analyst and "waiting for a supervisor" in analyst


def test_page_views_are_audited(agency, signed_in) -> None:
    cyber = agency.cases["cyber"]
    signed_in("ana").get(f"/cases/{cyber}")
    views = [r for r in agency.audit() if r["action"] == "api.page.case"]
    assert views and views[-1]["actor"] == "ana" and views[-1]["case"] == cyber
    assert views[-1]["reason"] == "viewed in the dashboard"


def test_audit_trail_page_for_auditors_only(agency, signed_in) -> None:
    cyber = agency.cases["cyber"]
    page = signed_in("aud").get(f"/cases/{cyber}/audit")
    assert page.status_code == 200 and "case.open" in page.text
    assert signed_in("ana").get(f"/cases/{cyber}/audit").status_code == 403


def test_recovery_page_with_and_without_entries(agency, signed_in) -> None:
    client = signed_in("ivo")
    assert "Nothing recorded yet" in client.get("/recovery").text
    agency.client.post(f"/api/cases/{agency.cases['cyber']}/ledger",
                       headers=agency.headers("ivo", reason="x"),
                       json={"kind": "seized", "chain": "btc", "amount": "150000000", "court_order": "C-1"})
    page = client.get("/recovery").text
    assert "1.5 BTC" in page and "data-chart" in page


def test_address_search_page(agency, signed_in, world) -> None:
    client = signed_in("ana")
    page = client.get(f"/address?chain=btc&q={world.G}").text
    assert "Lucky Casino" in page and "0.0099 BTC" in page and "On a sanctions list" in page
    bad = client.get("/address?chain=btc&q=nonsense").text
    assert "not a valid btc address" in bad


def test_roles_see_their_menu(agency, signed_in) -> None:
    admin = signed_in("admin").get("/admin/users").text
    assert "ivo" in admin and ">Users<" in admin
    assert signed_in("aud").get("/trace").status_code == 403


def test_sign_out_revokes_the_session_on_the_server(agency, signed_in) -> None:
    client = signed_in("ivo")
    token = client.cookies.get("fundtrail_session")
    assert token and client.get("/cases", follow_redirects=False).status_code == 200
    # the sign-out form of every page: a plain form post, without the API's X-Requested-With header
    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert "fundtrail_session" not in client.cookies
    # a copy of the old cookie (or the token itself) is refused everywhere afterwards
    client.cookies.set("fundtrail_session", token)
    assert client.get("/cases", follow_redirects=False).headers["location"].startswith("/login")
    assert client.get("/api/auth/me").status_code == 401
    assert client.get("/api/cases", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    state = agency.app.state.fundtrail
    tokens, _total = state.auth.list_tokens(state.cases.user("ivo"), limit=10)
    assert [t["revoked_at"] is not None for t in tokens if t["kind"] == "session"] == [True]



def test_no_template_holds_an_inline_script_or_event_handler() -> None:
    from fundtrail.web import TEMPLATES

    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
    handler = re.compile(r"<[^>]*(?<![\w-])on[a-z]+\s*=", re.IGNORECASE)
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert templates
    for path in templates:
        text = path.read_text()
        assert not inline_script.search(text), f"{path.name}: inline <script> (move it to static/)"
        assert not handler.search(text), f"{path.name}: inline event handler {handler.search(text)}"
        assert "javascript:" not in text.lower(), f"{path.name}: javascript: URL"


# ------------------------------------------------------------------------------ the case graph


def _preserve(agency, seeds: list[str], **options) -> dict:
    """Preserve a trace of ``seeds`` as evidence of the cyber case (its endpoints become subjects); the
    trace document as kept in the bag."""
    cyber = agency.cases["cyber"]
    r = agency.client.post(f"/api/cases/{cyber}/evidence", headers=agency.headers("ivo", reason="preserve"),
                           json={"chain": "btc", "seeds": seeds, "add_subjects": True, **options})
    assert r.status_code == 201, r.text
    bag = agency.home / r.json()["path"] / "data" / "trace.json"
    return {"id": r.json()["id"], "trace": json.loads(bag.read_text())}


def _preserved_graph(page: str) -> dict:
    """The preserved trace the case page hands its graph script (``data-preserved``)."""
    found = re.search(r"data-preserved='([^']*)'", page)
    assert found, "the case page gives its graph no preserved trace"
    return json.loads(html.unescape(found.group(1)))


def test_case_graph_draws_every_input_of_a_multi_input_spend(agency, signed_in, world) -> None:
    # t3 spends S (traced from R) and X2 (a seed) together, paying M: the flow into M records S as its
    # `from`, and both inputs under `inputs`; the graph has an edge from each of them to M.
    preserved = _preserve(agency, [world.R, world.X2])
    into_m = next(f for f in preserved["trace"]["flows"] if f["to"] == world.M)
    assert into_m["from"] == world.S
    assert [(i["address"], i["tainted_value"]) for i in into_m["inputs"]] == [(world.S, "6000000"),
                                                                              (world.X2, "3000000")]
    graph = _preserved_graph(signed_in("ivo").get(f"/cases/{agency.cases['cyber']}").text)["graph"]
    edges = {(e["source"], e["target"]): int(e["value"]) for e in graph["edges"]}
    assert edges[(world.S, world.M)] + edges[(world.X2, world.M)] == int(into_m["tainted_value"])
    assert edges[(world.X2, world.M)] == 5_000_000 * 3 // 9  # X2 brought 3 of the 9 million traced in
    multi = [f for f in preserved["trace"]["flows"] if f.get("inputs")]
    assert {f["txid"] for f in multi} == {world.txids["t2"], world.txids["t3"]}
    for flow in multi:  # every input address of a multi-input spend has its edge (E brought nothing: value 0)
        for i in flow["inputs"]:
            assert (i["address"], flow["to"]) in edges or i["address"] == flow["to"], (i, flow["to"])
    assert edges[(world.E, world.S)] == 0
    seeds = [n for n in graph["nodes"] if n["seed"]]
    assert {n["id"] for n in seeds} == {world.R, world.X2}
    assert all(any(e["source"] == n["id"] for e in graph["edges"]) for n in seeds)  # no unconnected seed


def test_case_graph_starts_from_the_preserved_trace(agency, signed_in, world) -> None:
    # preserved with poison and 2 owner hops: the graph shows its amounts, not those of a fresh trace with
    # the graph's defaults (haircut), and its hop control and policy start at the preserved ones
    preserved = _preserve(agency, [world.R], policy="poison", max_hops=2)
    cyber = agency.cases["cyber"]
    page = signed_in("ivo").get(f"/cases/{cyber}").text
    data = _preserved_graph(page)
    assert data["evidence"] == preserved["id"] and data["policy"] == "poison" and data["max_hops"] == 2
    assert re.search(r'id="trace-hops"[^>]*value="2"', page)
    assert re.search(r'<option value="poison" selected>', page)
    assert f"preserved trace {preserved['id']}" in page
    nodes = {n["id"]: n for n in data["graph"]["nodes"]}
    subjects = agency.client.get(f"/api/cases/{cyber}", headers=agency.headers("ivo")).json()["subjects"]
    amounts = {s["value"]: s["amount"] for s in subjects if s["amount"]}
    fresh = agency.client.post("/api/traces", headers=agency.headers("ivo"),
                               json={"chain": "btc", "seeds": [world.R]}).json()
    fresh_at = {e["address"]: e["tainted_value"] for e in fresh["endpoints"]}
    for service in (world.M, world.G):  # the mixer and the casino: attributed services
        kept = next(e for e in preserved["trace"]["endpoints"] if e["address"] == service)
        assert nodes[service]["tainted"] == kept["tainted_value"] == amounts[service]
        assert nodes[service]["entity"] == kept["entity"] and nodes[service]["reason"] == "service"
    assert fresh_at[world.G] != nodes[world.G]["tainted"]  # what a fresh default trace would have shown
    # the hop profile explains a graph traced to fewer hops: the mixer and the casino, 2 owner hops out,
    # lie beyond 1 (what a 1-hop graph leaves out of the case's amounts)
    assert data["profile"]["deepest"] == 2
    assert [(e["address"], e["hops"]) for e in preserved["trace"]["endpoints"] if e["hops"] > 1] == \
        [(world.M, 2), (world.G, 2)]
    assert data["profile"]["beyond"]["native"][1] == str(5_000_000 + 990_000)


def test_case_graph_refuses_a_preserved_trace_that_fails_its_hash(agency, signed_in, world) -> None:
    preserved = _preserve(agency, [world.R])
    bag = agency.home / "evidence" / preserved["id"] / "data" / "trace.json"
    bag.write_text(bag.read_text().replace('"poison"', '"poison" ').replace('"haircut"', '"haircut" '))
    page = signed_in("ivo").get(f"/cases/{agency.cases['cyber']}").text
    assert "data-preserved=" not in page
    assert "does not match its preserved hash" in page and preserved["id"] in page


def test_case_graph_without_preserved_evidence_traces_from_the_subjects(agency, signed_in, world) -> None:
    page = signed_in("ivo").get(f"/cases/{agency.cases['cyber']}").text
    assert "data-preserved=" not in page and world.R in page
    assert "Press <strong>Trace the funds</strong>" in page


# ------------------------------------------------------------------------------ the graph across chains


def _analysis_world() -> object:
    """The multi-chain world of tests/analysis/test_trace_conversions.py (BTC > memo > ETH swap > cBridge >
    BSC exchange)."""
    import importlib
    import sys
    from pathlib import Path

    folder = str(Path(__file__).resolve().parents[1] / "analysis")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("test_trace_conversions")


def test_graph_data_draws_conversions_between_chains_in_chain_colours() -> None:
    import fundtrail.intel.tagpacks  # noqa: F401  (registers the tags table)
    from fundtrail.analysis.flowgraph import CHAIN_COLORS, flow_graph
    from fundtrail.analysis.tracing import trace_funds
    from fundtrail.store import ChainStore

    w = _analysis_world()
    with ChainStore(":memory:") as store:
        w.build(store)
        graph = flow_graph(trace_funds(store, "btc", [w.SRC]).to_dict()).to_dict()
    conversions = [(e["source"], e["target"], e["conversion"]["kind"], e["conversion"]["rule"],
                    e["conversion"]["confidence"], e["conversion"]["in_chain"], e["conversion"]["out_chain"])
                   for e in graph["edges"] if "conversion" in e]
    assert conversions == [
        (w.VAULT, w.DAVE, "bridge", "thorchain-memo", 0.99, "btc", "eth"),
        (w.PAIR, w.DAVE, "swap", "uniswap-v2-swap", 0.99, "eth", "eth"),
        (w.BRIDGE_ETH, w.RECEIVER, "bridge", "cbridge-transfer-id", 0.99, "eth", "bsc"),
    ]
    chains = {n["id"]: n["chain"] for n in graph["nodes"]}
    assert chains[w.SRC] == "btc" and chains[w.DAVE] == "eth" and chains[w.EXCH] == "bsc"
    assert graph["chains"] == {c: CHAIN_COLORS[c] for c in ("bsc", "btc", "eth")}
    # the seed reaches the exchange on BSC along flow and conversion edges
    nxt: dict[str, set[str]] = {}
    for e in graph["edges"]:
        nxt.setdefault(e["source"], set()).add(e["target"])
    seen, todo = set(), [w.SRC]
    while todo:
        at = todo.pop()
        if at not in seen:
            seen.add(at)
            todo.extend(nxt.get(at, ()))
    assert w.EXCH in seen


def test_trace_page_names_the_colour_of_each_chain(agency, signed_in, world) -> None:
    from fundtrail.analysis.flowgraph import CHAIN_COLORS

    page = signed_in("ivo").get("/trace").text
    assert f'value="btc" data-decimals="8" data-symbol="BTC" data-color="{CHAIN_COLORS["btc"]}"' in page
