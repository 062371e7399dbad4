"""Every route of the app, called by every role (and by nobody): who gets through and who is refused.

:data:`MATRIX` names, for each route, the roles that may use it and how to call it. The first test fails
when the app has a route the matrix lacks (or the other way round), so a new route cannot ship without
its access rule. A refused role gets 403 (401 without credentials; pages send the anonymous to the
sign-in form); an allowed role gets anything else. The last test checks the object-level rule: a case
of another unit answers 404 on every route that names a case, as a case that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

ROLES = {"analyst": "ana", "investigator": "ivo", "supervisor": "sue", "auditor": "aud", "liaison": "lia",
         "admin": "admin"}
EVERYONE = frozenset(ROLES)
CHAIN = frozenset({"analyst", "investigator", "supervisor"})
READ = EVERYONE - {"admin"}
WORK = frozenset({"investigator", "supervisor"})
HANDLE = frozenset({"investigator", "supervisor", "liaison"})
VERIFY = frozenset({"analyst", "investigator", "supervisor", "auditor"})
AUDIT = frozenset({"auditor"})
ADMIN = frozenset({"admin"})
PUBLIC = None  # no sign-in needed
PARTNER = frozenset({"partner"})  # partner agencies' signed calls: user tokens do not open them
PASSWORD = "a password for the matrix"


@dataclass(frozen=True)
class Call:
    """How to call a route: who may, and the request (path with the world's values, body)."""

    allowed: frozenset[str] | None
    path: str
    body: Any = None
    page: bool = False
    form: dict[str, str] | None = None
    case_scoped: bool = False


def matrix(agency: Any, world: Any) -> dict[tuple[str, str], Call]:
    """The access rule and a valid call of every route."""
    c = agency.cases["cyber"]
    r = agency.extra["request"]
    e = agency.extra["evidence"]
    a = world.R
    reason = {"reason": "access matrix"}
    return {
        ("POST", "/api/auth/login"): Call(PUBLIC, "/api/auth/login",
                                          {"username": "ana", "password": PASSWORD}),
        ("POST", "/api/auth/oidc"): Call(PUBLIC, "/api/auth/oidc", {"id_token": "x" * 20}),
        ("POST", "/api/auth/logout"): Call(EVERYONE, "/api/auth/logout"),
        ("GET", "/api/auth/me"): Call(EVERYONE, "/api/auth/me"),
        ("POST", "/api/tokens"): Call(EVERYONE, "/api/tokens", {"name": "matrix"}),
        ("GET", "/api/tokens"): Call(EVERYONE, "/api/tokens"),
        ("DELETE", "/api/tokens/{token_id}"): Call(EVERYONE, "/api/tokens/0000000000000000"),
        ("GET", "/api/users"): Call(ADMIN, "/api/users"),
        ("PUT", "/api/users/{username}/password"): Call(ADMIN, "/api/users/lia/password",
                                                        {"password": "a long new password"}),
        ("GET", "/api/chains"): Call(CHAIN, "/api/chains"),
        ("GET", "/api/chains/{chain}/addresses/{address}"): Call(CHAIN, f"/api/chains/btc/addresses/{a}"),
        ("GET", "/api/chains/{chain}/addresses/{address}/risk"):
            Call(CHAIN, f"/api/chains/btc/addresses/{a}/risk"),
        ("GET", "/api/chains/{chain}/addresses/{address}/tags"):
            Call(CHAIN, f"/api/chains/btc/addresses/{a}/tags"),
        ("GET", "/api/chains/{chain}/addresses/{address}/cluster"):
            Call(CHAIN, f"/api/chains/btc/addresses/{a}/cluster"),
        ("GET", "/api/chains/{chain}/transactions/{txid}"):
            Call(CHAIN, f"/api/chains/btc/transactions/{world.txids['t1']}"),
        ("GET", "/api/tags/packs"): Call(CHAIN, "/api/tags/packs"),
        ("POST", "/api/traces"): Call(CHAIN, "/api/traces", {"chain": "btc", "seeds": [a], "max_hops": 2}),
        ("POST", "/api/paths"): Call(CHAIN, "/api/paths", {"chain": "btc", "source": a, "target": world.M}),
        ("GET", "/api/jobs/{job_id}"): Call(EVERYONE, "/api/jobs/nojob"),
        ("GET", "/api/cases"): Call(READ, "/api/cases"),
        ("POST", "/api/cases"): Call(WORK, "/api/cases", {"title": "matrix case", **reason}),
        ("GET", "/api/cases/{number}"): Call(READ, f"/api/cases/{c}", case_scoped=True),
        ("PATCH", "/api/cases/{number}"): Call(WORK, f"/api/cases/{c}", {"severity": "high", **reason},
                                                case_scoped=True),
        ("GET", "/api/cases/{number}/subjects"): Call(READ, f"/api/cases/{c}/subjects", case_scoped=True),
        ("POST", "/api/cases/{number}/subjects"):
            Call(WORK, f"/api/cases/{c}/subjects", {"kind": "person", "value": "J. Doe", **reason},
                 case_scoped=True),
        ("GET", "/api/cases/{number}/evidence"): Call(READ, f"/api/cases/{c}/evidence", case_scoped=True),
        ("POST", "/api/cases/{number}/evidence"):
            Call(WORK, f"/api/cases/{c}/evidence", {"chain": "btc", "seeds": [a], "max_hops": 1, **reason},
                 case_scoped=True),
        ("GET", "/api/evidence/{evidence_id}"): Call(READ, f"/api/evidence/{e}", case_scoped=True),
        ("POST", "/api/evidence/{evidence_id}/verify"): Call(VERIFY, f"/api/evidence/{e}/verify", reason,
                                                              case_scoped=True),
        ("GET", "/api/requests"): Call(READ, "/api/requests"),
        ("GET", "/api/requests/due"): Call(READ, "/api/requests/due"),
        ("POST", "/api/cases/{number}/requests"):
            Call(WORK, f"/api/cases/{c}/requests", {"type": "freeze", "recipient": "Northwind", **reason},
                 case_scoped=True),
        ("GET", "/api/requests/{request_number}"): Call(READ, f"/api/requests/{r}", case_scoped=True),
        ("POST", "/api/requests/{request_number}/approve"):
            Call(frozenset({"supervisor"}), f"/api/requests/{r}/approve", reason, case_scoped=True),
        **{("POST", f"/api/requests/{{request_number}}/{step}"):
           Call(HANDLE, f"/api/requests/{r}/{step}", reason, case_scoped=True)
           for step in ("send", "acknowledge", "answer", "refuse")},
        ("GET", "/api/cases/{number}/ledger"): Call(READ, f"/api/cases/{c}/ledger", case_scoped=True),
        ("POST", "/api/cases/{number}/ledger"):
            Call(WORK, f"/api/cases/{c}/ledger", {"kind": "frozen", "chain": "btc", "amount": "1",
                                                   "court_order": "C-1", **reason}, case_scoped=True),
        ("GET", "/api/reports/recovery"): Call(READ, "/api/reports/recovery"),
        ("GET", "/api/alerts"): Call(READ, "/api/alerts"),
        ("GET", "/api/audit/verify"): Call(AUDIT, "/api/audit/verify"),
        ("GET", "/api/cases/{number}/audit"): Call(AUDIT, f"/api/cases/{c}/audit", case_scoped=True),
        # the dashboard
        ("GET", "/"): Call(PUBLIC, "/", page=True),
        ("GET", "/login"): Call(PUBLIC, "/login", page=True),
        ("POST", "/login"): Call(PUBLIC, "/login", page=True, form={"username": "ana", "password": PASSWORD}),
        ("POST", "/logout"): Call(PUBLIC, "/logout", page=True),
        ("GET", "/address"): Call(CHAIN, f"/address?chain=btc&q={a}", page=True),
        ("GET", "/trace"): Call(CHAIN, "/trace", page=True),
        ("GET", "/account"): Call(EVERYONE, "/account", page=True),
        ("GET", "/admin/users"): Call(ADMIN, "/admin/users", page=True),
        ("GET", "/cases"): Call(READ, "/cases", page=True),
        ("GET", "/cases/{number}"): Call(READ, f"/cases/{c}", page=True, case_scoped=True),
        ("GET", "/cases/{number}/audit"): Call(AUDIT, f"/cases/{c}/audit", page=True, case_scoped=True),
        ("GET", "/recovery"): Call(READ, "/recovery", page=True),
        ("GET", "/alerts"): Call(READ, "/alerts", page=True),
        # cooperation with partner agencies (signed calls; see fundtrail.sharing.api)
        ("GET", "/api/cooperation/agency"): Call(PUBLIC, "/api/cooperation/agency"),
        **{("POST", f"/api/cooperation/{p}"): Call(PARTNER, f"/api/cooperation/{p}", {})
           for p in ("packages", "psi", "psi/contacts", "requests", "audit/witness")},
        **{("POST", f"/api/cooperation/requests/{{number}}/{p}"):
           Call(PARTNER, f"/api/cooperation/requests/{r}/{p}", {}) for p in ("acknowledgement", "answer")},
        ("GET", "/api/cooperation/inbox"): Call(HANDLE, "/api/cooperation/inbox"),
        **{("POST", f"/api/cooperation/{p}"): Call(PARTNER, f"/api/cooperation/{p}", {})
           for p in ("watches", "watches/alerts")},
        **{("GET", f"/taxii2{p}"): Call(PARTNER, "/taxii2" + p.replace("{api_root}", "fundtrail")
                                         .replace("{cid}", "c").replace("{oid}", "o").replace("{sid}", "s"))
           for p in ("/", "/{api_root}/", "/{api_root}/collections/", "/{api_root}/collections/{cid}/",
                     "/{api_root}/collections/{cid}/objects/", "/{api_root}/collections/{cid}/manifest/",
                     "/{api_root}/collections/{cid}/objects/{oid}/",
                     "/{api_root}/collections/{cid}/objects/{oid}/versions/", "/{api_root}/status/{sid}/")},
        ("POST", "/taxii2/{api_root}/collections/{cid}/objects/"):
            Call(PARTNER, "/taxii2/fundtrail/collections/c/objects/", {}),
        # the API's own documentation
        ("GET", "/openapi.json"): Call(PUBLIC, "/openapi.json"),
        ("GET", "/docs"): Call(PUBLIC, "/docs"),
    }


def walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route, through included routers; static files are not routes."""
    for route in routes:
        if hasattr(route, "original_router"):  # a router included with a prefix
            yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
        elif getattr(route, "methods", None):
            for method in sorted(route.methods - {"HEAD"}):
                yield method, prefix + route.path
        elif getattr(route, "name", None) != "static":
            raise AssertionError(f"unknown kind of route {route!r}")


@pytest.fixture(scope="module")
def prepared(chain_home, world, tmp_path_factory, agency_maker):
    """One agency for the whole matrix, with a draft request (by ivo) and a preserved evidence item on the
    Cybercrime case. Calls change its state (a request gets approved, then cannot be approved again):
    allowed roles then get 409 or 422, which still shows they got past the access checks."""
    with agency_maker(chain_home, tmp_path_factory.mktemp("matrix")) as agency:
        c = agency.cases["cyber"]
        r = agency.client.post(f"/api/cases/{c}/requests", headers=agency.headers("ivo", reason="prepare"),
                               json={"type": "freeze", "recipient": "Northwind Exchange"})
        e = agency.client.post(f"/api/cases/{c}/evidence", headers=agency.headers("ivo", reason="prepare"),
                               json={"chain": "btc", "seeds": [world.R], "max_hops": 2})
        agency.extra = {"request": r.json()["number"], "evidence": e.json()["id"]}
        agency.app.state.fundtrail.auth.set_password("ana", PASSWORD)
        yield agency


def _send(agency: Any, call: Call, method: str, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers, "follow_redirects": False}
    if call.form is not None:
        kwargs["data"] = call.form
    elif call.body is not None:
        kwargs["json"] = call.body
    return agency.client.request(method, call.path, **kwargs)


def _headers_for(agency: Any, user: str, key: tuple[str, str]) -> dict[str, str]:
    if key in (("POST", "/api/auth/logout"), ("POST", "/logout")):  # revokes the token: use a throwaway one
        from datetime import timedelta

        token, _ = agency.app.state.fundtrail.auth.issue(user, name="logout", lifetime=timedelta(minutes=5))
        return {"Authorization": f"Bearer {token}"}
    return agency.headers(user)


def test_every_route_has_an_access_rule(prepared, world) -> None:
    routes = set(walk(prepared.app.routes))
    rules = set(matrix(prepared, world))
    assert routes - rules == set(), "routes without an access rule in the matrix"
    assert rules - routes == set(), "rules for routes the app does not have"


def _route_ids() -> list[str]:
    class _Fake:
        cases = {"cyber": "C"}
        extra = {"request": "R", "evidence": "E"}

    class _World:
        R = M = "A"
        txids = {"t1": "T"}

    return [f"{m} {p}" for m, p in matrix(_Fake(), _World())]


@pytest.mark.parametrize("route", _route_ids())
def test_roles_against_the_matrix(prepared, world, route: str) -> None:
    method, path = route.split(" ", 1)
    key = (method, path)
    call = matrix(prepared, world)[key]
    client = prepared.client
    client.cookies.clear()
    anonymous = _send(prepared, call, method, {})
    if call.allowed is PUBLIC:
        assert anonymous.status_code not in (401, 403), f"{route}: public route refused without sign-in"
    elif call.allowed is PARTNER:
        assert anonymous.status_code == 401, f"{route}: answered {anonymous.status_code} without a signature"
    elif call.page:
        assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"], route
    else:
        assert anonymous.status_code == 401, f"{route}: answered {anonymous.status_code} without credentials"
    assert anonymous.headers.get("cache-control") == "no-store", f"{route}: may be cached"
    for role, user in ROLES.items():
        response = _send(prepared, call, method, _headers_for(prepared, user, key))
        assert response.headers.get("cache-control") == "no-store", f"{route}: {role}'s answer may be cached"
        if call.allowed is PARTNER:
            assert response.status_code == 401, f"{route}: a {role}'s token opened a partner route"
        elif call.allowed is PUBLIC or role in call.allowed:
            assert response.status_code not in (401, 403), \
                f"{route}: {role} refused ({response.status_code}: {response.text[:200]})"
            assert response.status_code < 500, f"{route}: {role} got {response.status_code}"
        else:
            assert response.status_code == 403, \
                f"{route}: {role} should be refused, got {response.status_code}: {response.text[:200]}"


def test_cases_of_another_unit_are_not_found_on_every_route(prepared, world) -> None:
    """oscar (investigator, Fraud Unit) may do everything an investigator may, but not on this case."""
    rules = matrix(prepared, world)
    scoped = [(k, v) for k, v in rules.items() if v.case_scoped]
    assert len(scoped) >= 15
    for (method, path), call in scoped:
        response = _send(prepared, call, method, prepared.headers("oscar"))
        if call.allowed is not PUBLIC and "investigator" not in call.allowed:
            assert response.status_code == 403, f"{method} {path}: {response.status_code}"
        else:
            assert response.status_code == 404, \
                f"{method} {path}: {response.status_code} {response.text[:200]}"

