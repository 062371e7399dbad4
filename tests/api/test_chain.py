"""Chain look-ups, traces, paths and jobs through the API."""

from __future__ import annotations

import time


def test_address_document_has_activity_cluster_tags_sanctions_and_risk(agency, world) -> None:
    r = agency.client.get(f"/api/chains/btc/addresses/{world.G}", headers=agency.headers("ana"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["address"] == world.G
    assert doc["received"] == "990000" and doc["balance"] == "990000"
    assert [t["entity"] or t["label"] for t in doc["tags"]] == ["Lucky Casino"]
    assert doc["sanctions"]["sanctioned"] is True
    assert doc["risk"]["level"] in ("high", "severe")
    assert any("sanction" in i["id"] for i in doc["risk"]["indicators"])


def test_address_of_a_cluster_names_the_cluster(agency, world) -> None:
    doc = agency.client.get(f"/api/chains/btc/addresses/{world.R}", headers=agency.headers("ana")).json()
    assert doc["cluster"]["size"] == 2  # world.R and world.E spent together in t2


def test_cluster_members_are_paged(agency, world) -> None:
    h = agency.headers("ana")
    first = agency.client.get(f"/api/chains/btc/addresses/{world.R}/cluster?limit=1", headers=h).json()
    assert first["size"] == 2 and len(first["members"]) == 1 and first["next_offset"] == 1
    url = f"/api/chains/btc/addresses/{world.R}/cluster?limit=1&offset=1"
    second = agency.client.get(url, headers=h).json()
    assert second["next_offset"] is None
    assert {first["members"][0]["address"], second["members"][0]["address"]} == {world.R, world.E}
    too_many = agency.client.get(f"/api/chains/btc/addresses/{world.R}/cluster?limit=100000", headers=h)
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "limit"


def test_tags_and_risk_routes(agency, world) -> None:
    h = agency.headers("ivo")
    tags = agency.client.get(f"/api/chains/btc/addresses/{world.M}/tags", headers=h).json()
    assert tags["tags"][0]["category"] == "mixing_service"
    risk = agency.client.get(f"/api/chains/btc/addresses/{world.S}/risk", headers=h).json()
    assert risk["address"] == world.S
    assert {"level", "score", "indicators", "notes"} <= set(risk)


def test_transaction_detail(agency, world) -> None:
    h = agency.headers("ana")
    doc = agency.client.get(f"/api/chains/btc/transactions/{world.txids['t3']}", headers=h).json()
    assert [o["address"] for o in doc["outputs"]][0] == world.M
    missing = agency.client.get(f"/api/chains/btc/transactions/{'0' * 64}", headers=agency.headers("ana"))
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_bad_chain_and_address_name_the_field(agency, world) -> None:
    h = agency.headers("ana")
    r = agency.client.get(f"/api/chains/nochain/addresses/{world.R}", headers=h)
    assert r.status_code == 422
    error = r.json()["errors"][0]
    assert (error["field"], error["location"]) == ("chain", "path") and "unknown chain" in error["message"]
    r = agency.client.get("/api/chains/btc/addresses/not-an-address", headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "address"
    assert "not a valid btc address" in r.json()["detail"]


def test_trace_finds_the_mixer_and_the_casino(agency, world) -> None:
    r = agency.client.post("/api/traces", headers=agency.headers("ana"),
                           json={"chain": "btc", "seeds": [world.R], "max_hops": 4})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["seeds"] == [world.R]
    entities = {e["entity"] for e in doc["endpoints"] if e["entity"]}
    assert "Blender" in entities
    assert all(isinstance(f["tainted_value"], str) for f in doc["flows"])


def test_trace_input_errors_name_the_field(agency, world) -> None:
    h = agency.headers("ana")
    r = agency.client.post("/api/traces", headers=h, json={"chain": "btc", "seeds": ["nonsense"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "seeds"
    body = {"chain": "btc", "seeds": [world.R], "policy": "magic"}
    r = agency.client.post("/api/traces", headers=h, json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "policy"
    r = agency.client.post("/api/traces", headers=h, json={"chain": "btc", "seeds": [world.R], "surprise": 1})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "surprise"
    body = {"chain": "btc", "seeds": [world.R], "since": 10, "until": 5}
    r = agency.client.post("/api/traces", headers=h, json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "until"


def test_background_trace_answers_202_and_the_job_gives_the_trace(agency, world) -> None:
    h = agency.headers("ana")
    body = {"chain": "btc", "seeds": [world.R], "background": True}
    r = agency.client.post("/api/traces", headers=h, json=body)
    assert r.status_code == 202
    location = r.headers["location"]
    assert location == r.json()["location"] and location.startswith("/api/jobs/")
    for _ in range(100):
        job = agency.client.get(location, headers=h).json()
        if job["status"] != "running":
            break
        time.sleep(0.05)
    assert job["status"] == "done"
    assert job["result"]["seeds"] == [world.R]
    # A job is its owner's: another user gets 404, as for a job that does not exist.
    assert agency.client.get(location, headers=agency.headers("ivo")).status_code == 404


def test_failed_background_job_carries_a_problem(agency, world) -> None:
    h = agency.headers("ana")
    body = {"chain": "btc", "seeds": ["f" * 64], "background": True}
    r = agency.client.post("/api/traces", headers=h, json=body)
    location = r.headers["location"]
    for _ in range(100):
        job = agency.client.get(location, headers=h).json()
        if job["status"] != "running":
            break
        time.sleep(0.05)
    assert job["status"] == "failed"
    assert job["problem"]["status"] == 404


def test_paths_between_two_addresses(agency, world) -> None:
    r = agency.client.post("/api/paths", headers=agency.headers("ana"),
                           json={"chain": "btc", "source": world.R, "target": world.M, "max_hops": 4})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["found"] >= 1
    assert doc["paths"][0]["flows"][-1]["to"] == world.M


def test_chains_and_tag_packs_are_paged(agency, world) -> None:
    h = agency.headers("ana")
    chains = agency.client.get("/api/chains", headers=h).json()
    assert [c["chain"] for c in chains["items"]] == ["btc"] and chains["total"] == 1
    packs = agency.client.get("/api/tags/packs?limit=1", headers=h).json()
    assert packs["total"] == 1 and packs["items"][0]["tags"] == 4


def test_slow_look_ups_answer_202_with_a_job(chain_home, tmp_path, world, agency_maker) -> None:
    """With no time to wait (as for a hub address), the address document comes as a job to poll."""
    with agency_maker(chain_home, tmp_path) as agency:
        state = agency.app.state.fundtrail
        state.settings = state.settings.model_copy(update={"sync_seconds": 0})
        h = agency.headers("ana")
        r = agency.client.get(f"/api/chains/btc/addresses/{world.S}", headers=h)
        assert r.status_code == 202, r.text
        for _ in range(200):
            job = agency.client.get(r.headers["location"], headers=h).json()
            if job["status"] != "running":
                break
            time.sleep(0.05)
        assert job["status"] == "done" and job["result"]["address"] == world.S
        # once computed, the document is served at once
        assert agency.client.get(f"/api/chains/btc/addresses/{world.S}", headers=h).status_code == 200
