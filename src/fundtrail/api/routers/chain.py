"""Chain look-ups: chains, addresses (with cluster, tags, sanctions, exposure, risk), transactions,
cluster members, tags and tag packs.

Look-ups do not touch case data and are not audited; they need the ``chain:read`` permission.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from fundtrail.analysis.clustering import describe_cluster
from fundtrail.analysis.risk import evaluate_address
from fundtrail.api.access import Action, Principal
from fundtrail.api.deps import Limit, Offset, allowed, api_state, bounded
from fundtrail.api.documents import address_document, json_bytes
from fundtrail.api.errors import about_field
from fundtrail.api.schemas import (
    AddressDocument,
    ChainSummary,
    ClusterDocument,
    JobAccepted,
    Page,
    RiskDocument,
    TagPackInfo,
    TagsDocument,
    TransactionDocument,
    page_of,
)
from fundtrail.domain.chains import get_chain
from fundtrail.intel.tagstore import canonical_or_given, has_table, tagpack_summary, tags_for
from fundtrail.store.lookups import transaction_detail

log = logging.getLogger(__name__)

router = APIRouter(tags=["chain"])

ChainPath = Annotated[str, Path(min_length=1, max_length=16, description="Chain name: btc, ltc, eth ...",
                                examples=["btc"])]
AddressPath = Annotated[str, Path(min_length=1, max_length=200, description="An address of the chain.")]
TxidPath = Annotated[str, Path(min_length=1, max_length=200, description="A transaction id (hash).")]
Reader = Annotated[Principal, Depends(allowed(Action.CHAIN_READ))]


def _chain(chain: str) -> str:
    with about_field("chain", "path"):
        return get_chain(chain).name


@router.get("/chains", operation_id="list_chains", response_model=Page[ChainSummary],
            summary="Chains in the chain store")
def list_chains(request: Request, user: Reader, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """Each chain the store holds: blocks, height range, transactions, addresses."""
    with api_state(request).chain.store() as store:
        rows = store.summary()
    return page_of(rows[offset:offset + limit], len(rows), limit, offset)


@router.get("/chains/{chain}/addresses/{address}", operation_id="get_address",
            response_model=AddressDocument,
            responses={202: {"model": JobAccepted, "description": "Still computing: poll the job."}},
            summary="An address with its activity, cluster, tags, sanctions, exposure and risk")
async def get_address(request: Request, chain: ChainPath, address: AddressPath, user: Reader) -> Any:
    """The ``fundtrail address`` document. Addresses with much activity may answer 202 with a job.

    Computed documents are kept in memory while the chain store (and the home's indicator catalogue)
    has not changed since they were computed; a change made by any process is seen within
    ``document_cache_seconds``. Concurrent look-ups of one address share one computation.
    """
    chain = _chain(chain)
    state = api_state(request)
    cache = state.address_cache
    key = (chain, address)
    generation = cache.current()  # before computing: a document is never tagged newer than it is
    cached = cache.get(key, generation)
    if cached is not None:
        return Response(cached, media_type="application/json")
    running = cache.pending(key, generation)
    if running is not None:  # another request computes it: wait for that one (within the sync wait)
        try:
            body = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(running)),
                                          state.settings.sync_seconds)
        except Exception:  # noqa: BLE001 - slow or failed: compute (or fail) as a request of our own
            pass
        else:
            return Response(body, media_type="application/json")
    claim = cache.claim(key, generation)

    def work() -> dict[str, Any]:
        try:
            with state.chain.store() as store, about_field("address", "path"):
                doc = address_document(store, state.home, chain, address)
            body = json_bytes(doc)
        except BaseException as error:
            cache.settle(key, claim, error=error)
            raise
        cache.put(key, body, generation)
        cache.put((chain, doc["address"]), body, generation)
        cache.settle(key, claim, body)
        return doc

    try:
        answer = await run_in_threadpool(bounded, request, user, "address", work)
    except Exception as error:
        cache.settle(key, claim, error=error)  # the work did not run (no effect when it settled it)
        raise
    if isinstance(answer, dict):
        return Response(cache.get(key, generation) or json_bytes(answer), media_type="application/json")
    return answer


@router.get("/chains/{chain}/addresses/{address}/risk", operation_id="get_address_risk",
            response_model=RiskDocument,
            responses={202: {"model": JobAccepted, "description": "Still computing: poll the job."}},
            summary="The risk of an address, with the indicators that fired and their evidence")
def get_address_risk(request: Request, chain: ChainPath, address: AddressPath, user: Reader,
                     trace: Annotated[bool, Query(description="Include indirect exposure (traces).")] = True
                     ) -> Any:
    """Risk level and score with reasons; ``trace=false`` skips indirect exposure."""
    chain = _chain(chain)
    state = api_state(request)

    def work() -> dict[str, Any]:
        with state.chain.store() as store, about_field("address", "path"):
            report = evaluate_address(store, chain, address, home=state.home, trace=trace)
        return {"chain": chain, "address": report.address, **report.to_dict()}

    return bounded(request, user, "risk", work)


@router.get("/chains/{chain}/addresses/{address}/tags", operation_id="get_address_tags",
            response_model=TagsDocument, summary="Attribution tags of an address")
def get_address_tags(request: Request, chain: ChainPath, address: AddressPath,
                     user: Reader) -> dict[str, Any]:
    """Tags on the address itself and on its cluster, with confidence and source."""
    chain = _chain(chain)
    with api_state(request).chain.store() as store, about_field("address", "path"):
        canonical = canonical_or_given(chain, address)
        tags = [t.to_dict() for t in tags_for(store, chain, canonical)]
    return {"chain": chain, "address": canonical, "tags": tags}


@router.get("/chains/{chain}/addresses/{address}/cluster", operation_id="get_address_cluster",
            response_model=ClusterDocument, summary="The cluster of an address and a page of its members")
def get_address_cluster(request: Request, chain: ChainPath, address: AddressPath, user: Reader,
                        limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """Cluster id, size, reasons and one page of members (clusters can hold millions of addresses)."""
    chain = _chain(chain)
    with api_state(request).chain.store() as store, about_field("address", "path"):
        doc = describe_cluster(store, chain, address, limit=limit, offset=offset)
    following = offset + len(doc["members"])
    doc["next_offset"] = following if following < doc["size"] else None
    return doc


@router.get("/chains/{chain}/transactions/{txid}", operation_id="get_transaction",
            response_model=TransactionDocument,
            summary="A transaction with its inputs and outputs or transfers")
async def get_transaction(request: Request, chain: ChainPath, txid: TxidPath, user: Reader) -> Response:
    """Block, time, fee, inputs and outputs (UTXO) or transfers (account chains)."""
    chain = _chain(chain)
    state = api_state(request)
    generation = state.transaction_cache.current()
    cached = state.transaction_cache.get((chain, txid), generation)
    if cached is None:
        cached = await run_in_threadpool(_transaction, state, chain, txid, generation)
    return Response(cached, media_type="application/json")


def _transaction(state: Any, chain: str, txid: str, generation: Any) -> bytes:
    with state.chain.store() as store, about_field("txid", "path"):
        body = json_bytes(transaction_detail(store, chain, txid))
    state.transaction_cache.put((chain, txid), body, generation)
    return body


@router.get("/tags/packs", operation_id="list_tag_packs", response_model=Page[TagPackInfo],
            summary="Imported tag packs")
def list_tag_packs(request: Request, user: Reader, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """The TagPacks and label lists imported into the chain store."""
    with api_state(request).chain.store() as store:
        packs = tagpack_summary(store) if has_table(store, "tagpacks") else []
    return page_of(packs[offset:offset + limit], len(packs), limit, offset)

