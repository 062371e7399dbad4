"""Settings of the service and the state one app instance shares between requests."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from fundtrail.api.documents import DocumentCache, home_generation
from fundtrail.api.jobs import JobManager
from fundtrail.api.stores import ChainAccess

if TYPE_CHECKING:
    from fundtrail.api.auth import AuthService


class OidcSettings(BaseModel):
    """OpenID Connect: ID tokens of ``issuer`` for ``audience``, signed by a key of the JWKS."""

    issuer: str = Field(description="The issuer (``iss``) that ID tokens must name.")
    audience: str = Field(description="The client id (``aud``) that ID tokens must be for.")
    jwks_url: str | None = Field(default=None, description="Where the issuer publishes its keys (JWKS).")
    jwks_file: Path | None = Field(default=None, description="A JWKS file, instead of a URL.")
    username_claim: str = Field(default="preferred_username",
                                description="The claim naming the local user the token stands for.")
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "PS256", "EdDSA"])
    leeway_seconds: int = 30


class ApiSettings(BaseModel):
    """What a service instance needs to know; every field has a working default."""

    sync_seconds: float = Field(default=2.0, ge=0,
                                description="How long a request waits for an analysis before answering 202.")
    session_hours: float = Field(default=8.0, gt=0, description="How long a dashboard sign-in lasts.")
    cookie_secure: bool = Field(default=False, description="Send the session cookie over HTTPS only.")
    job_workers: int = Field(default=2, ge=1, le=32)
    shared_folder: Path | None = Field(
        default=None, description="A folder the worker processes of one server share: finished background "
                                  "jobs (so that any worker answers a poll), the nonces of partners' "
                                  "signed calls (so that no worker accepts a replay), open PSI queries and "
                                  "TAXII statuses (so that a partner's follow-up call may reach any "
                                  "worker). None: one process. (Revocations are announced in the home.)")
    token_cache_seconds: float = Field(default=5.0, ge=0, le=300,
                                       description="How long a checked token is trusted without asking "
                                                   "the database again: the bound within which a "
                                                   "revocation made outside the server (the CLI) takes "
                                                   "effect; one through any of its workers does at once.")
    address_cache_size: int = Field(default=4096, ge=0,
                                    description="Address documents kept in memory (0: none).")
    document_cache_seconds: float = Field(default=0.5, ge=0, le=86400,
                                          description="How often (at most) a worker looks whether the "
                                                      "chain store changed: computed address and "
                                                      "transaction documents are served from memory while "
                                                      "it has not, and a change made by any process is "
                                                      "seen within this time (0: at every look-up).")
    sqlite_wal: bool = Field(default=True, description="Put a SQLite case database in WAL mode "
                                                       "(commits without rewriting the database file).")
    password_time_cost: int = Field(default=3, ge=1, le=20, description="argon2id passes.")
    password_memory_kib: int = Field(default=65536, ge=1024, description="argon2id memory (KiB).")
    login_attempts: int = Field(default=5, ge=1, description="Failed sign-ins before a pause.")
    login_pause_seconds: int = Field(default=60, ge=1)
    oidc: OidcSettings | None = None
    database_url: str | None = Field(default=None,
                                     description="Case database URL (default $FUNDTRAIL_DATABASE_URL, "
                                                 "else cases.sqlite in the home).")


@dataclass
class ApiState:
    """What one app instance shares: the home, settings, chain store, jobs, authentication, caches."""

    home: Path
    settings: ApiSettings
    chain: ChainAccess
    jobs: JobManager
    address_cache: DocumentCache
    auth: AuthService
    transaction_cache: DocumentCache = field(default_factory=lambda: DocumentCache(16384))
    cases: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """The document caches' documents stay valid while the home's chain store has not changed."""
        probe = functools.partial(home_generation, self.home)
        self.address_cache.watch(probe)
        self.transaction_cache.watch(probe)

    def close(self) -> None:
        """Release the chain store, the job pool and the case database."""
        self.jobs.shutdown()
        self.chain.close()
        close_auth = getattr(self.auth, "close", None)
        if close_auth is not None:
            close_auth()
        close = getattr(self.cases, "close", None)
        if close is not None:
            close()
