"""Revocations take effect at once on every worker of ``fundtrail serve --workers 2``, not within the
token cache's bound: signing out, revoking a token and setting a password, each through one connection,
then many requests on new connections (so that both workers answer) are refused."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from test_serve_workers import _children, fresh, serving

from fundtrail.api.auth import REVOCATIONS, AuthService
from fundtrail.api.state import ApiSettings

PASSWORD = "correct horse battery staple"
ROUNDS = 16


def _warm(base: str, token: str) -> None:
    """Every worker has checked ``token`` and keeps it in its cache (the bound is long)."""
    for _ in range(ROUNDS):
        answer = fresh("GET", f"{base}/api/auth/me", token)
        assert answer.status_code == 200, answer.text


def _refused_everywhere(base: str, token: str) -> None:
    statuses = [fresh("GET", f"{base}/api/auth/me", token).status_code for _ in range(ROUNDS)]
    assert statuses == [401] * ROUNDS


def _sign_in(base: str, username: str) -> str:
    answer = httpx.post(f"{base}/api/auth/login", json={"username": username, "password": PASSWORD},
                        timeout=60)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["token"]
    return token


def test_revocations_take_effect_at_once_on_every_worker(agency) -> None:
    from fundtrail.api.auth import Credentials

    with Credentials(agency.home) as credentials:
        for user in ("ana", "admin"):
            credentials.set_password(user, PASSWORD)
        api_token, info = credentials.issue("ana", name="workers", lifetime=timedelta(days=1))
    # A token cache of five minutes: only the revocation file can make the workers forget in time.
    with serving(agency.home, "--workers", "2", "--token-cache-seconds", "300") as (base, process):
        assert len(_children(process.pid)) == 2
        admin = _sign_in(base, "admin")

        session = _sign_in(base, "ana")  # sign-out
        _warm(base, session)
        assert fresh("POST", f"{base}/api/auth/logout", session).status_code == 204
        _refused_everywhere(base, session)

        _warm(base, api_token)  # a token revoked by its owner's admin
        revoked = fresh("DELETE", f"{base}/api/tokens/{info['id']}", admin)
        assert revoked.status_code == 200, revoked.text
        _refused_everywhere(base, api_token)

        session = _sign_in(base, "ana")  # a password set by an admin ends the user's sessions
        _warm(base, session)
        changed = fresh("PUT", f"{base}/api/users/ana/password", admin,
                        json={"password": "another long password"})
        assert changed.status_code == 204, changed.text
        _refused_everywhere(base, session)
        _warm(base, admin)  # other users' sessions go on


def test_a_check_that_began_before_a_revocation_is_not_kept(agency, tmp_path: Path) -> None:
    """A worker whose token check read the database before another worker's revocation must not keep
    that answer in its cache once it has seen the revocation file grow."""
    settings = ApiSettings(shared_folder=tmp_path, token_cache_seconds=300, password_time_cost=1,
                           password_memory_kib=1024)
    cases = agency.app.state.fundtrail.cases
    one, other = (AuthService(cases, settings, background=False) for _ in range(2))
    token, info = one.issue("ana", name="race", lifetime=timedelta(days=1))
    assert other.principal_for_token(token) is not None  # cached in the other worker

    real = other._reader.read

    def read_then_revoke(digests: list[str]) -> object:
        found = real(digests)  # the old answer, read just before ...
        one.revoke(one.principal_for_token(token), info["id"])  # ... the first worker revokes, and
        assert other.cached_principal(token) is None  # another request here sees the revocation file grow
        return found

    other.forget(info["id"])  # not cached any more: the next request checks the database
    other._reader.read = read_then_revoke  # type: ignore[method-assign]
    assert other.principal_for_token(token) is not None  # this request's check began before the revocation
    other._reader.read = real  # type: ignore[method-assign]
    assert (tmp_path / REVOCATIONS).stat().st_size >= 2
    assert other.principal_for_token(token) is None  # ... but its answer was not kept for later ones
    assert one.principal_for_token(token) is None
    one.close()
    other.close()



def test_revocations_made_by_the_cli_take_effect_at_once(agency) -> None:
    """`fundtrail token revoke` and `fundtrail token password` on the server's home: every worker refuses
    the token or session at once, although each would trust its cache for five minutes."""
    import subprocess
    import sys

    from fundtrail.api.auth import Credentials

    with Credentials(agency.home) as credentials:
        credentials.set_password("ana", PASSWORD)
        api_token, info = credentials.issue("ana", name="cli", lifetime=timedelta(days=1))
    cli = [sys.executable, "-c", "from fundtrail.cli.main import run; run()"]
    with serving(agency.home, "--workers", "2", "--token-cache-seconds", "300") as (base, process):
        assert len(_children(process.pid)) == 2
        session = _sign_in(base, "ana")
        _warm(base, api_token)
        _warm(base, session)
        done = subprocess.run([*cli, "token", "revoke", info["id"], "--home", str(agency.home)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        _refused_everywhere(base, api_token)
        _warm(base, session)  # the user's other credentials go on
        done = subprocess.run([*cli, "token", "password", "ana", "--password-stdin", "--home",
                               str(agency.home)], input="another long password\n", capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        _refused_everywhere(base, session)
    assert (Path(agency.home) / REVOCATIONS).stat().st_size >= 2
