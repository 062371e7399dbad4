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
