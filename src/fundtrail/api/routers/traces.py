"""Traces, path searches and the background jobs that run the big ones."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from fundtrail.analysis.paths import find_paths
from fundtrail.analysis.tracing import trace_funds
from fundtrail.api.access import Action, Principal
from fundtrail.api.deps import CaseAccess, User, api_state, bounded, clean_reason, job_document
from fundtrail.api.deps import allowed as allowed_to
from fundtrail.api.errors import FieldError, about_field
from fundtrail.api.schemas import (
    JobAccepted,
    JobDocument,
    PathRequest,
    PathsDocument,
    TraceDocument,
    TraceRequest,
)
from fundtrail.domain.chains import get_chain
from fundtrail.errors import InputError

router = APIRouter(tags=["traces"])

Tracer = Annotated[Principal, Depends(allowed_to(Action.TRACE_RUN))]
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": JobAccepted, "description": "Still running: poll the job at `location`."},
}


def _chain(chain: str) -> str:
    with about_field("chain"):
        return get_chain(chain).name


@router.post("/traces", operation_id="create_trace", response_model=TraceDocument, responses=ACCEPTED,
             summary="Trace funds from seeds with a taint policy")
def create_trace(request: Request, body: TraceRequest, user: Tracer) -> Any:
    """Endpoints (services, CoinJoins, unspent) and flows hop by hop. A trace that takes longer than the
    service's wait (or asked ``background``) answers 202 with a job to poll."""
    chain = _chain(body.chain)
    if body.since is not None and body.until is not None and body.since > body.until:
        raise FieldError("until", InputError(f"until ({body.until}) is before since ({body.since})"))
    state = api_state(request)
    if body.case is not None:  # a trace for a case: the case must be in reach, and the trace is audited
        access = CaseAccess(request, user, Action.CASE_READ, clean_reason(request.headers.get("x-reason")))
        access.read(lambda ctx: ctx.case(body.case).number, case=body.case.strip().upper())

    def work() -> dict[str, Any]:
        with state.chain.store() as store, about_field("seeds"):
            result = trace_funds(store, chain, list(body.seeds), body.trace_params())
        return result.to_dict()

    return bounded(request, user, "trace", work, background=body.background)


@router.post("/paths", operation_id="find_paths", response_model=PathsDocument, responses=ACCEPTED,
             summary="Paths that carried value from one address to another")
def create_paths(request: Request, body: PathRequest, user: Tracer) -> Any:
    """The shortest value-carrying paths from ``source`` to ``target``, at most ``limit``."""
    chain = _chain(body.chain)
    state = api_state(request)

    def work() -> dict[str, Any]:
        with state.chain.store() as store, about_field("source"):
            result = find_paths(store, chain, body.source, body.target, body.trace_params(), limit=body.limit)
        return result.to_dict()

    return bounded(request, user, "paths", work, background=body.background)


@router.get("/jobs/{job_id}", operation_id="get_job", response_model=JobDocument,
            summary="A background job: status and result")
def get_job(request: Request, job_id: Annotated[str, Path(min_length=1, max_length=64)],
            user: User) -> dict[str, Any]:
    """The job's status; its result once done, or the problem that stopped it. Only its owner sees it."""
    job = api_state(request).jobs.get(job_id, user.user_id)
    return job_document(job)

