"""Tracing funds with a named taint policy: forward (where did the funds go) or backward (where from).

``trace_funds`` follows value step by step, a step being one transaction (UTXO chains) or one transfer
(account chains), and applies the policy's rule (:mod:`fundtrail.domain.taint`) at each step. Hops count
hand-overs between owners: a step that stays inside one owner (the sender's change, the next step of a
peel chain, an address of the sender's cluster: :mod:`~fundtrail.analysis.tracing.owners`) uses no hop
and its flow names the rule. It stops where the funds rest or where it cannot or should not see further,
and says why:

* ``service``: an address attributed to a service (exchange, mixer, bridge ...), when
  ``stop_at_services``; ``hub``: an address with more than ``hub_degree`` transactions;
  ``coinjoin``: a CoinJoin transaction (``tx_patterns``); ``unspent``: funds not spent (yet);
  ``max_hops``: ``max_hops`` owner hand-overs; ``max_steps``: ``max_steps`` transactions (transfers);
  ``min_value``: a tainted value below ``min_value``; ``time_window``: a spend outside
  ``since``/``until``; ``change``: a change output when ``follow_change`` is off;
  backward also ``coinbase`` (newly mined), ``origin`` (rewards, genesis), ``not_in_store`` (value
  spent from outputs of blocks the store does not hold) and ``unknown`` (value no input accounts for).

The package: :mod:`.params` (the options, one validated value), :mod:`.result` (the result model and
its JSON document), :mod:`.seeds`, :mod:`.queries` (SQL shared with path search), :mod:`.attribution`
(the attribution cache), :mod:`.owners` (same-owner rules), :mod:`.utxo` and :mod:`.account` (the two
engines; :mod:`.forward_flows` keeps a forward UTXO trace's flows as columns and builds their documents
from them), :mod:`.crosschain` (a forward trace goes on across stored conversions: swaps, bridges, pools,
onto other assets and chains, unless ``follow_conversions`` is off), :mod:`.screening` (every flow and
endpoint against the sanctions lists in force on the day of its transaction) and :mod:`.service`
(``trace_funds``).

The result is deterministic: sorted by strings and integers only, so a re-run on the same data gives
the same document byte for byte.
"""

from __future__ import annotations

from fundtrail.analysis.graph import expand_ranges
from fundtrail.analysis.tracing.attribution import AttributionIndex, attribution_index
from fundtrail.analysis.tracing.owners import RULE_NAMES, same_cluster, same_owner_rules
from fundtrail.analysis.tracing.params import (
    DEFAULT_MAX_HOPS,
    DEFAULT_MAX_STEPS,
    MAX_HOPS_LIMIT,
    MAX_STEPS_LIMIT,
    TraceParams,
    make_params,
)
from fundtrail.analysis.tracing.queries import (
    Transfer,
    address_degrees,
    address_id,
    address_texts,
    coinjoin_txids,
    transfers,
    with_ids,
)
from fundtrail.analysis.tracing.result import (
    REASONS,
    SAME_OWNER_RULES,
    STOP_REASONS,
    Endpoint,
    Flow,
    TraceResult,
)
from fundtrail.analysis.tracing.seeds import Seed, normalise_txid, parse_seed
from fundtrail.analysis.tracing.service import trace_funds

__all__ = ["DEFAULT_MAX_HOPS", "DEFAULT_MAX_STEPS", "MAX_HOPS_LIMIT", "MAX_STEPS_LIMIT", "REASONS",
           "RULE_NAMES",
           "SAME_OWNER_RULES", "STOP_REASONS", "AttributionIndex", "Endpoint", "Flow", "Seed", "TraceParams",
           "TraceResult", "Transfer", "address_degrees", "address_id", "address_texts", "attribution_index",
           "coinjoin_txids", "expand_ranges", "make_params", "normalise_txid", "parse_seed", "same_cluster",
           "same_owner_rules", "trace_funds", "transfers", "with_ids"]
