"""Headers of every answer: case data is never cached, and the content security policy forbids inline
scripts (the dashboard's and the API documentation's scripts are files under /static)."""

from __future__ import annotations

import re

import pytest

PASSWORD = "correct horse battery staple"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]*(?<![\w-])on[a-z]+\s*=", re.IGNORECASE)


def directives(policy: str) -> dict[str, list[str]]:
    """A content security policy as {directive: sources}."""
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


@pytest.fixture()
def dashboard(agency):
    """The test client signed in to the dashboard as ivo (session cookie)."""
    agency.app.state.fundtrail.auth.set_password("ivo", PASSWORD)
    r = agency.client.post("/login", data={"username": "ivo", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 303
    return agency.client


def test_the_policy_allows_no_inline_script(agency) -> None:
    for path in ("/login", "/docs", "/api/auth/me", "/static/app.js"):
        policy = directives(agency.client.get(path).headers["content-security-policy"])
        scripts = policy.get("script-src", policy.get("default-src"))
        assert scripts == ["'self'"], f"{path}: script-src {scripts}"
        elements = policy.get("script-src-attr", []) + policy.get("script-src-elem", [])
        assert not any("unsafe" in source for source in elements), path


def test_pages_carry_no_inline_script_or_event_handler(agency, dashboard) -> None:
    cyber = agency.cases["cyber"]
    for path in ("/login", "/docs", "/cases", f"/cases/{cyber}", "/trace?chain=btc&seeds=x", "/recovery",
                 "/account", "/address"):
        page = dashboard.get(path).text
        assert not INLINE_SCRIPT.search(page), f"{path}: inline script {INLINE_SCRIPT.search(page)}"
        assert not EVENT_HANDLER.search(page), f"{path}: event handler {EVENT_HANDLER.search(page)}"
    assert dashboard.get("/static/swagger-init.js").status_code == 200


def test_case_data_is_never_cached(agency, dashboard) -> None:
    cyber, fraud = agency.cases["cyber"], agency.cases["fraud"]
    api = ["/api/cases", f"/api/cases/{cyber}", f"/api/cases/{cyber}/subjects",
           f"/api/cases/{cyber}/evidence", f"/api/cases/{cyber}/ledger", "/api/requests",
           "/api/requests/due", "/api/reports/recovery",
           f"/api/cases/{fraud}"]  # out of reach: 404, no-store as well
    for path in api:
        r = agency.client.get(path, headers=agency.headers("ivo"))
        assert r.headers.get("cache-control") == "no-store", f"{path}: {r.headers.get('cache-control')}"
    r = agency.client.get(f"/api/cases/{cyber}/audit", headers=agency.headers("aud"))
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    r = agency.client.post("/api/cases", headers=agency.headers("ivo"), json={"title": "x", "reason": "y"})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    for path in ("/cases", f"/cases/{cyber}", "/recovery", "/account", "/login"):
        r = dashboard.get(path)
        assert r.status_code == 200 and r.headers.get("cache-control") == "no-store", path
    assert agency.client.get("/api/cases").headers["cache-control"] == "no-store"  # 401 too
    # static assets hold no case data: browsers may keep them
    assert "no-store" not in agency.client.get("/static/app.js").headers.get("cache-control", "")
