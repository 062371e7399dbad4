"""Dashboard pages rendered by the server (no browser): sign-in, cases, a case, audit, recovery, search."""

from __future__ import annotations

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
