"""Sign-in, tokens and sessions, OpenID Connect with a local key and JWKS."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

PASSWORD = "correct horse battery staple"


@pytest.fixture()
def with_password(agency):
    """``ana`` and ``sue`` have a password."""
    auth = agency.app.state.fundtrail.auth
    for user in ("ana", "sue"):
        auth.set_password(user, PASSWORD)
    return agency


def test_login_with_json_or_form_gives_a_token_and_a_session_cookie(with_password) -> None:
    client = with_password.client
    r = client.post("/api/auth/login", json={"username": "ana", "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert token.startswith("fts_") and r.json()["kind"] == "session"
    assert "fundtrail_session" in r.cookies
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["role"] == "analyst"
    client.cookies.clear()
    form = client.post("/api/auth/login", data={"username": "sue", "password": PASSWORD})
    assert form.status_code == 200 and form.json()["token"] != token
    cookie = form.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_wrong_password_and_unknown_user_are_refused_alike(with_password) -> None:
    client = with_password.client
    wrong = client.post("/api/auth/login", json={"username": "ana", "password": "not it at all"})
    unknown = client.post("/api/auth/login", json={"username": "nobody", "password": "not it at all"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    missing = client.post("/api/auth/login", json={"username": "ana"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "password"


def test_repeated_failures_pause_the_user(with_password) -> None:
    client = with_password.client
    for _ in range(5):
        failed = client.post("/api/auth/login", json={"username": "sue", "password": "guess"})
        assert failed.status_code == 401
    paused = client.post("/api/auth/login", json={"username": "sue", "password": PASSWORD})
    assert paused.status_code == 429 and int(paused.headers["retry-after"]) > 0


def test_passwords_and_tokens_are_stored_only_as_hashes(with_password) -> None:
    from sqlalchemy import select

    from fundtrail.api.models import ApiCredential, ApiToken

    login = {"username": "ana", "password": PASSWORD}
    token = with_password.client.post("/api/auth/login", json=login).json()["token"]
    with with_password.db.session() as session:
        hashes = [c.password_hash for c in session.execute(select(ApiCredential)).scalars()]
        stored = [t.token_hash for t in session.execute(select(ApiToken)).scalars()]
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)
    assert token not in stored and all(len(h) == 64 for h in stored)


def test_no_or_bad_credentials_answer_401(agency) -> None:
    assert agency.client.get("/api/cases").status_code == 401
    assert agency.client.get("/api/cases", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert agency.client.get("/api/cases", headers={"Authorization": "Basic YTpi"}).status_code == 401


def test_api_tokens_are_made_listed_and_revoked(agency) -> None:
    h = agency.headers("ivo")
    made = agency.client.post("/api/tokens", headers=h, json={"name": "script", "expires_in_days": 7})
    assert made.status_code == 201
    token, token_id = made.json()["token"], made.json()["id"]
    mine = {"Authorization": f"Bearer {token}"}
    assert agency.client.get("/api/auth/me", headers=mine).json()["username"] == "ivo"
    listed = agency.client.get("/api/tokens", headers=h).json()["items"]
    assert {t["id"] for t in listed} >= {token_id} and all("token" not in t for t in listed)
    # another user's token: not found; an admin may revoke anyone's
    assert agency.client.delete(f"/api/tokens/{token_id}", headers=agency.headers("ana")).status_code == 404
    assert agency.client.delete(f"/api/tokens/{token_id}", headers=agency.headers("admin")).status_code == 200
    assert agency.client.get("/api/auth/me", headers=mine).status_code == 401
    # only admins make tokens for others
    other = agency.client.post("/api/tokens", headers=h, json={"name": "x", "username": "ana"})
    assert other.status_code == 403
    assert agency.client.post("/api/tokens", headers=agency.headers("admin"),
                              json={"name": "for ana", "username": "ana"}).status_code == 201


def test_expired_tokens_stop_working(agency) -> None:
    auth = agency.app.state.fundtrail.auth
    token, _info = auth.issue("ana", name="short", lifetime=timedelta(seconds=1))
    h = {"Authorization": f"Bearer {token}"}
    assert agency.client.get("/api/auth/me", headers=h).status_code == 200
    time.sleep(1.2)
    assert agency.client.get("/api/auth/me", headers=h).status_code == 401


def test_logout_ends_the_session(with_password) -> None:
    client = with_password.client
    token = client.post("/api/auth/login", json={"username": "ana", "password": PASSWORD}).json()["token"]
    h = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/auth/logout", headers=h).status_code == 204
    assert client.get("/api/auth/me", headers=h).status_code == 401


def test_cookie_sessions_need_the_custom_header_for_changes(with_password) -> None:
    client = with_password.client
    client.post("/api/auth/login", json={"username": "ana", "password": PASSWORD})
    assert client.get("/api/auth/me").status_code == 200  # reads by cookie alone
    body = {"chain": "btc", "seeds": ["1BoatSLRHtKNngkdXEeobR76b53LETtpyT"], "max_hops": 1}
    assert client.post("/api/traces", json=body).status_code == 401
    with_header = client.post("/api/traces", json=body, headers={"X-Requested-With": "fundtrail"})
    assert with_header.status_code in (200, 404)


def test_admins_manage_users_and_passwords(agency) -> None:
    users = agency.client.get("/api/users?limit=100", headers=agency.headers("admin")).json()
    assert {u["username"] for u in users["items"]} >= {"ana", "ivo", "sue", "aud", "lia", "admin"}
    admin = agency.headers("admin")
    r = agency.client.put("/api/users/ana/password", headers=admin, json={"password": PASSWORD})
    assert r.status_code == 204
    login = agency.client.post("/api/auth/login", json={"username": "ana", "password": PASSWORD})
    assert login.status_code == 200
    short = agency.client.put("/api/users/ana/password", headers=admin, json={"password": "short"})
    assert short.status_code == 422 and short.json()["errors"][0]["field"] == "password"
    assert agency.client.get("/api/users", headers=agency.headers("sue")).status_code == 403


# ------------------------------------------------------------------------------------------ OpenID Connect


class _Jwks(BaseHTTPRequestHandler):
    body = b"{}"

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def idp_key() -> rsa.RSAPrivateKey:
    """The identity provider's signing key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture()
def oidc(agency, idp_key):
    """The identity provider's JWKS served on loopback, an app that trusts it, and a token maker."""
    from fastapi.testclient import TestClient

    from fundtrail.api.app import create_app
    from fundtrail.api.state import ApiSettings, OidcSettings

    key = idp_key
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    handler = type("Jwks", (_Jwks,), {"body": json.dumps({"keys": [jwk]}).encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    settings = ApiSettings(oidc=OidcSettings(issuer="https://idp.example.org", audience="fundtrail",
                                             jwks_url=f"http://127.0.0.1:{server.server_port}/jwks"),
                           password_time_cost=1, password_memory_kib=1024)
    app = create_app(agency.home, settings)

    def token(**claims: object) -> str:
        now = int(time.time())
        body = {"iss": "https://idp.example.org", "aud": "fundtrail", "iat": now, "exp": now + 300,
                "preferred_username": "ana", **claims}
        return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})

    try:
        with TestClient(app) as client:
            yield client, token
    finally:
        server.shutdown()
        server.server_close()


def test_oidc_id_token_signs_in_the_user_it_names(oidc) -> None:
    client, token = oidc
    r = client.post("/api/auth/oidc", json={"id_token": token()})
    assert r.status_code == 200, r.text
    session = r.json()["token"]
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {session}"}).json()
    assert me["username"] == "ana"


@pytest.mark.parametrize("claims", [{"aud": "someone-else"}, {"iss": "https://evil.example.org"},
                                    {"exp": 1_000_000}, {"preferred_username": "nobody"}])
def test_oidc_refuses_tokens_for_others_from_others_expired_or_unknown_users(oidc, claims) -> None:
    client, token = oidc
    assert client.post("/api/auth/oidc", json={"id_token": token(**claims)}).status_code == 401


def test_oidc_refuses_a_token_signed_by_another_key(oidc) -> None:
    client, _token = oidc
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    forged = jwt.encode({"iss": "https://idp.example.org", "aud": "fundtrail", "iat": now, "exp": now + 60,
                         "preferred_username": "ana"}, other, algorithm="RS256", headers={"kid": "k1"})
    assert client.post("/api/auth/oidc", json={"id_token": forged}).status_code == 401
    unsigned = jwt.encode({"iss": "https://idp.example.org", "aud": "fundtrail", "iat": now, "exp": now + 60,
                           "preferred_username": "ana"}, key=None, algorithm="none")
    assert client.post("/api/auth/oidc", json={"id_token": unsigned}).status_code == 401


def test_oidc_off_answers_404(agency) -> None:
    r = agency.client.post("/api/auth/oidc", json={"id_token": "x" * 40})
    assert r.status_code == 404
