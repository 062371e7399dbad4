"""The OpenAPI document: served, every operation named explicitly, errors documented as problem details."""

from __future__ import annotations

import re


def test_every_operation_has_a_stable_explicit_id(agency) -> None:
    document = agency.client.get("/openapi.json").json()
    ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            op = operation.get("operationId")
            assert op, f"{method.upper()} {path} has no operationId"
            # FastAPI's generated ids end with the path and method (``get_case_api_cases__number__get``)
            assert not re.search(r"_(get|post|put|patch|delete)$", op), f"{op} looks generated"
            ids.append(op)
    assert len(ids) == len(set(ids)), "operation ids must be unique"
    assert {"get_address", "create_trace", "get_case", "approve_request", "verify_audit", "login"} <= set(ids)


def test_errors_are_documented_as_problem_details(agency) -> None:
    document = agency.client.get("/openapi.json").json()
    get_case = document["paths"]["/api/cases/{number}"]["get"]["responses"]
    assert {"401", "403", "404", "422"} <= set(get_case)
    assert "application/problem+json" in get_case["404"]["content"]
    assert "409" in document["paths"]["/api/requests/{request_number}/approve"]["post"]["responses"]
    assert "202" in document["paths"]["/api/traces"]["post"]["responses"]


def test_the_documentation_page_needs_no_outside_network(agency) -> None:
    page = agency.client.get("/docs").text
    assert "/static/vendor/swagger-ui-bundle.js" in page and "/openapi.json" in page
    assert "cdn." not in page and "https://" not in page.replace("https://swagger.io", "")
    assert agency.client.get("/static/vendor/swagger-ui-bundle.js").status_code == 200


MAIN_READS = [
    ("/api/traces", "post"),
    ("/api/chains/{chain}/addresses/{address}", "get"),
    ("/api/cases", "get"),
    ("/api/cases/{number}", "get"),
    ("/api/cases/{number}/evidence", "get"),
    ("/api/evidence/{evidence_id}", "get"),
]
"""The main read routes: what a client of each receives is described to the last field."""

FREE_FORM = {("FiredIndicator", "parameters"), ("SubjectDoc", "details"), ("CustodyDoc", "details")}
"""Objects that are free-form by nature (an indicator's own parameters, details a user typed)."""


def _untyped_objects(document: dict, schema: dict, where: str, seen: set[str]) -> list[str]:
    """Places under ``schema`` where an object admits anything and declares nothing (``dict[str, Any]``)."""
    found: list[str] = []
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            return found
        seen.add(name)
        return _untyped_objects(document, document["components"]["schemas"][name], name, seen)
    is_object = schema.get("type") == "object" or "properties" in schema or "additionalProperties" in schema
    extra = schema.get("additionalProperties")
    if is_object and not schema.get("properties") and extra in (None, True, {}):
        found.append(where)
    for key, sub in (schema.get("properties") or {}).items():
        if (where, key) not in FREE_FORM:
            found += _untyped_objects(document, sub, f"{where}.{key}", seen)
    if isinstance(extra, dict) and extra:
        found += _untyped_objects(document, extra, f"{where}[*]", seen)
    for key in ("items", "anyOf", "oneOf", "allOf"):
        subs = schema.get(key)
        for sub in subs if isinstance(subs, list) else [subs] if subs else []:
            found += _untyped_objects(document, sub, f"{where}[]", seen)
    return found


def test_main_read_routes_describe_what_clients_receive(agency) -> None:
    document = agency.client.get("/openapi.json").json()
    for path, method in MAIN_READS:
        answer = document["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        untyped = _untyped_objects(document, answer, f"{method.upper()} {path}", set())
        assert not untyped, f"{method.upper()} {path}: untyped objects (additionalProperties: true) {untyped}"
    flow = document["components"]["schemas"]["TraceFlow"]
    assert {"hop", "step", "same_owner", "from", "to", "tainted_value"} <= set(flow["properties"])
    assert {"hop", "step"} <= set(flow["required"]) and "same_owner" not in flow["required"]
    assert "max_steps" in document["components"]["schemas"]["TraceParameters"]["properties"]


def test_typed_documents_keep_the_services_json(agency, world) -> None:
    """A key a service leaves out stays out (no null added), amounts stay exact strings."""
    doc = agency.client.post("/api/traces", headers=agency.headers("ana"),
                             json={"chain": "btc", "seeds": [world.R], "max_hops": 4}).json()
    from fundtrail.analysis.tracing import TraceParams, trace_funds

    with agency.app.state.fundtrail.chain.store() as store:
        expected = trace_funds(store, "btc", [world.R], TraceParams(max_hops=4)).to_dict()
    assert doc == expected
    assert any("same_owner" not in f for f in doc["flows"]) and all("input" not in f for f in doc["flows"])
