"""The tracing service: ``trace_funds`` parses the seeds and runs the engine of the chain's model."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fundtrail.analysis.graph import snapshot
from fundtrail.analysis.tracing.account import trace_account
from fundtrail.analysis.tracing.crosschain import follow_conversions
from fundtrail.analysis.tracing.lists import trace_lists
from fundtrail.analysis.tracing.params import TraceParams
from fundtrail.analysis.tracing.result import TraceResult, bulk
from fundtrail.analysis.tracing.screening import screen_trace
from fundtrail.analysis.tracing.seeds import Seed, check_seed_shape, parse_seed
from fundtrail.analysis.tracing.utxo import UtxoTrace
from fundtrail.domain.chains import NATIVE_ASSET, get_chain
from fundtrail.errors import InputError
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)


def trace_funds(store: ChainStore, chain: str, seeds: Sequence[str], params: TraceParams | None = None,
                **options: Any) -> TraceResult:
    """Trace funds from ``seeds`` (addresses, txids or ``txid:n``) with a named taint policy.

    Forward: where the funds the seeds received (or the seed outputs) went. Backward: where the
    funds the seeds received came from. Values are exact integers of base units. ``params`` holds the
    options; keyword ``options`` (the names of :class:`TraceParams`) build it when it is not given.
    See the package docstring for the stop rules.
    """
    if params is not None and options:
        raise InputError("give the trace options either as TraceParams or as keywords, not both")
    params = TraceParams.from_dict(options) if params is None else params
    info = get_chain(chain)
    chain = info.name
    if not seeds:
        raise InputError("a trace needs at least one seed (address, txid or txid:n)")
    snap = snapshot(store, chain)
    if info.is_utxo:
        if params.asset not in (None, NATIVE_ASSET):
            raise InputError(f"{chain} has only the native asset, not {params.asset!r}")
        for s in seeds:  # reject what is neither an address nor a txid before building the graph
            check_seed_shape(store, chain, s)
        trace = UtxoTrace(store, chain, params, snap)
        parsed = [parse_seed(store, chain, s, lambda txid: trace.g.find_tx(txid) >= 0) for s in seeds]
        with bulk():  # the engine makes arrays and acyclic lists: no cycle for the collector to find
            result = trace.run(parsed)
    else:
        parsed = [parse_seed(store, chain, s) for s in seeds]
        result = trace_account(store, chain, params, parsed)
    lists = trace_lists(store, snap)
    result = screen_trace(store, follow_conversions(store, result, params, run_engine, lists), lists)
    log.info("trace %s %s %s from %d seeds: %d endpoints", chain, params.direction.value,
             params.policy.value, len(parsed), len(result.endpoints))
    return result


def run_engine(store: ChainStore, chain: str, seeds: Sequence[Seed], params: TraceParams) -> TraceResult:
    """One trace on one chain from parsed seeds, without following conversions."""
    if get_chain(chain).is_utxo:
        return UtxoTrace(store, chain, params).run(seeds)
    return trace_account(store, chain, params, seeds)
