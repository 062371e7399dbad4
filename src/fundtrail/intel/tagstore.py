"""The tag store: which tags an address has, directly or through its cluster, and the best attribution.

Tags live in the ``tags`` table (TagPack and Etherscan imports); clusters, when computed, in
``clusters(chain, address_id, cluster_id, reason)``. A tag on any address of a cluster describes the
whole cluster (propagation); a direct tag on the address always wins over a cluster tag, and among
tags of the same kind the highest confidence wins (then cluster-defining tags, then tags with a
category or abuse, then the most recently modified).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fundtrail.domain.addresses import canonical_address
from fundtrail.domain.chains import CHAINS
from fundtrail.errors import InvalidAddressError
from fundtrail.intel import tagtables  # noqa: F401  (registers the tag tables)
from fundtrail.intel.attribution import Attribution
from fundtrail.store.chainstore import ChainStore

log = logging.getLogger(__name__)

_RANK = """ORDER BY via_cluster, t.confidence_level DESC NULLS LAST, t.is_cluster_definer DESC NULLS LAST,
                     (t.category IS NOT NULL OR t.abuse IS NOT NULL) DESC, t.lastmod DESC NULLS LAST,
                     t.label NULLS LAST, t.tagpack, t.tag_index"""


_ACTORS = ("(SELECT id, any_value(label) AS label, any_value(jurisdictions) AS jurisdictions "
           "FROM actors GROUP BY id)")


def has_table(store: ChainStore, name: str) -> bool:
    """True when the store holds a table called ``name`` (tables of optional layers may be absent)."""
    row = store.con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [name]).fetchone()
    return bool(row and row[0])


def canonical_or_given(chain: str, address: str) -> str:
    """The canonical form of an address on a known chain; as given (stripped) otherwise or when invalid."""
    text = address.strip()
    if chain not in CHAINS:
        return text
    try:
        return canonical_address(chain, text)
    except InvalidAddressError:
        return text


def _candidates_sql(with_clusters: bool) -> str:
    """SQL of (id, via_cluster, tag row) candidates for the query ids in ``_q(id)``."""
    direct = """SELECT q.id, false AS via_cluster, t.*
                FROM _q q JOIN addresses a ON a.chain = $chain AND a.id = q.id
                JOIN tags t ON t.chain = $chain AND t.address = a.address"""
    if not with_clusters:
        return direct
    return direct + """
                UNION ALL
                SELECT q.id, true AS via_cluster, t.*
                FROM _q q JOIN clusters c ON c.chain = $chain AND c.address_id = q.id
                JOIN clusters m ON m.chain = $chain AND m.cluster_id = c.cluster_id AND m.address_id <> q.id
                JOIN addresses a ON a.chain = $chain AND a.id = m.address_id
                JOIN tags t ON t.chain = $chain AND t.address = a.address"""


def _best_sql(candidates: str) -> str:
    """SQL picking, per ``id`` of the candidate tag rows, the attribution described in the module doc.

    The best-ranked tag gives entity, confidence and source; category and abuse come from the
    best-ranked tag of the same kind (direct or cluster) that has one, so an address tagged both as a
    mixer and as sanctioned (by different tags of equal rank) is both.
    """
    return f"""
        WITH cand AS ({candidates}),
             ranked AS (SELECT t.*, coalesce(ac.label, t.label, t.actor) AS entity,
                               coalesce(t.jurisdiction, CASE WHEN len(ac.jurisdictions) > 0
                                        THEN array_to_string(ac.jurisdictions, ',') END) AS juris,
                               row_number() OVER w AS rk, first_value(t.via_cluster) OVER w AS best_via
                        FROM cand t
                        LEFT JOIN {_ACTORS} ac ON ac.id = t.actor
                        WINDOW w AS (PARTITION BY t.id {_RANK}))
        SELECT id, min_by(entity, rk),
               min_by(category, rk) FILTER (WHERE category IS NOT NULL AND via_cluster = best_via),
               min_by(abuse, rk) FILTER (WHERE abuse IS NOT NULL AND via_cluster = best_via),
               min_by(juris, rk), coalesce(min_by(confidence_level, rk), 0), min_by(source, rk),
               min_by(via_cluster, rk)
        FROM ranked GROUP BY id"""


def _attribution(row: tuple[Any, ...]) -> Attribution:
    return Attribution(entity=row[1], category=row[2], abuse=row[3], jurisdiction=row[4],
                       confidence=int(row[5]), source=row[6], via_cluster=bool(row[7]))


def attribute_ids(store: ChainStore, chain: str, address_ids: Sequence[int]) -> dict[int, Attribution]:
    """The best attribution per address id of ``chain`` (ids without any tag are absent).

    A direct tag comes first; else a tag on another address of the same cluster (``via_cluster``).
    Among candidates the highest confidence wins. The entity is the actor's label when the actor is
    known (ActorPack), else the tag's label.
    """
    ids = sorted({int(i) for i in address_ids})
    if not ids:
        return {}
    sql = ("WITH _q AS (SELECT DISTINCT unnest($ids::BIGINT[]) AS id) "
           + _best_sql(_candidates_sql(has_table(store, "clusters"))).replace("WITH cand", ", cand", 1))
    rows = store.con.execute(sql, {"ids": ids, "chain": chain}).fetchall()
    return {int(r[0]): _attribution(r) for r in rows}


def attribute_addresses(store: ChainStore, chain: str, addresses: Iterable[str]) -> dict[str, Attribution]:
    """:func:`attribute_ids` keyed by address text; addresses the store has not seen get direct tags only."""
    wanted = {canonical_or_given(chain, a) for a in addresses}
    if not wanted:
        return {}
    rows = store.con.execute("SELECT id, address FROM addresses WHERE chain = ? AND address IN "
                             "(SELECT unnest(?::VARCHAR[]))", [chain, sorted(wanted)]).fetchall()
    by_id = {int(i): a for i, a in rows}
    out = {by_id[i]: att for i, att in attribute_ids(store, chain, list(by_id)).items()}
    unseen = sorted(wanted - set(by_id.values()))
    if unseen:
        sql = _best_sql("""SELECT t.address AS id, false AS via_cluster, t.* EXCLUDE (address) FROM tags t
                           WHERE t.chain = $chain AND t.address IN (SELECT unnest($addrs::VARCHAR[]))""")
        for r in store.con.execute(sql, {"chain": chain, "addrs": unseen}).fetchall():
            out[r[0]] = _attribution(r)
    return out


@dataclass(frozen=True, slots=True)
class TagView:
    """A tag as shown to an investigator: what it says, how sure, where from, and how it applies."""

    chain: str
    address: str
    label: str | None
    category: str | None
    abuse: str | None
    actor: str | None
    entity: str | None
    jurisdiction: str | None
    confidence: str | None
    confidence_level: int
    source: str | None
    tagpack: str | None
    tagpack_title: str | None
    lastmod: str | None
    via_cluster: bool
    cluster_addresses: int = 1
    """For cluster tags: how many addresses of the cluster carry this same tag (``address`` is one)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping."""
        return asdict(self)


def cluster_of(store: ChainStore, chain: str, address: str) -> tuple[int, int] | None:
    """(cluster id, size) of an address, or None when unclustered or clusters are not computed."""
    if not has_table(store, "clusters"):
        return None
    row = store.con.execute(
        """SELECT c.cluster_id, (SELECT count(*) FROM clusters m WHERE m.chain = c.chain
                                  AND m.cluster_id = c.cluster_id)
           FROM addresses a JOIN clusters c ON c.chain = a.chain AND c.address_id = a.id
           WHERE a.chain = ? AND a.address = ?""", [chain, canonical_or_given(chain, address)]).fetchone()
    return (int(row[0]), int(row[1])) if row else None


_VIEW_COLUMNS = """t.chain, t.address, t.label, t.category, t.abuse, t.actor,
                   coalesce(ac.label, t.label, t.actor) AS entity,
                   coalesce(t.jurisdiction,
                            CASE WHEN len(ac.jurisdictions) > 0
                                 THEN array_to_string(ac.jurisdictions, ',') END) AS jurisdiction,
                   t.confidence, coalesce(t.confidence_level, 0) AS confidence_level, t.source, t.tagpack,
                   p.title AS tagpack_title, t.lastmod"""
_VIEW_JOINS = f"""LEFT JOIN {_ACTORS} ac ON ac.id = t.actor
                 LEFT JOIN tagpacks p ON p.uri = t.tagpack"""


def tags_for(store: ChainStore, chain: str, address: str, *, cluster_limit: int = 50) -> list[TagView]:
    """Every direct tag of an address, then the tags of its cluster (grouped, most confident first)."""
    address = canonical_or_given(chain, address)
    rows = store.con.execute(
        f"""SELECT {_VIEW_COLUMNS}, false, 1 FROM tags t {_VIEW_JOINS}
            WHERE t.chain = ? AND t.address = ?
            ORDER BY confidence_level DESC, t.tagpack, t.tag_index""", [chain, address]).fetchall()
    views = [TagView(*r) for r in rows]
    cluster = cluster_of(store, chain, address)
    if cluster is not None:
        rows = store.con.execute(
            f"""WITH members AS (SELECT a.address FROM clusters c JOIN addresses a
                                   ON a.chain = c.chain AND a.id = c.address_id
                                 WHERE c.chain = $chain AND c.cluster_id = $cluster
                                   AND a.address <> $address),
                     ct AS (SELECT {_VIEW_COLUMNS} FROM members m
                            JOIN tags t ON t.chain = $chain AND t.address = m.address {_VIEW_JOINS})
                SELECT chain, min(address), label, category, abuse, actor, entity, jurisdiction, confidence,
                       confidence_level, source, tagpack, tagpack_title, max(lastmod), true,
                       count(DISTINCT address)
                FROM ct GROUP BY chain, label, category, abuse, actor, entity, jurisdiction, confidence,
                                 confidence_level, source, tagpack, tagpack_title
                ORDER BY confidence_level DESC, count(DISTINCT address) DESC, label
                LIMIT $limit""",
            {"chain": chain, "cluster": cluster[0], "address": address, "limit": cluster_limit}).fetchall()
        views.extend(TagView(*r) for r in rows)
    return views


def cluster_attribution(store: ChainStore, chain: str, cluster_id: int) -> Attribution | None:
    """The attribution of a whole cluster: the best tag on any of its addresses (propagation)."""
    if not has_table(store, "clusters"):
        return None
    sql = _best_sql("""SELECT c.cluster_id AS id, true AS via_cluster, t.*
                       FROM clusters c JOIN addresses a ON a.chain = c.chain AND a.id = c.address_id
                       JOIN tags t ON t.chain = c.chain AND t.address = a.address
                       WHERE c.chain = $chain AND c.cluster_id = $cluster""")
    row = store.con.execute(sql, {"chain": chain, "cluster": cluster_id}).fetchone()
    return None if row is None else _attribution(row)


def propagate_to_clusters(store: ChainStore, chain: str) -> dict[int, Attribution]:
    """The attribution of every address of ``chain`` that is tagged or shares a cluster with a tagged one.

    One query over the whole chain; the result is what :func:`attribute_ids` answers id by id.
    """
    if not has_table(store, "clusters"):
        rows = store.con.execute("""SELECT a.id FROM tags t JOIN addresses a
                                    ON a.chain = t.chain AND a.address = t.address WHERE t.chain = ?""",
                                 [chain]).fetchall()
    else:
        rows = store.con.execute(
            """SELECT DISTINCT m.address_id FROM tags t
               JOIN addresses a ON a.chain = t.chain AND a.address = t.address
               JOIN clusters c ON c.chain = t.chain AND c.address_id = a.id
               JOIN clusters m ON m.chain = c.chain AND m.cluster_id = c.cluster_id
               WHERE t.chain = $chain
               UNION SELECT a.id FROM tags t JOIN addresses a ON a.chain = t.chain AND a.address = t.address
               WHERE t.chain = $chain""", {"chain": chain}).fetchall()
    return attribute_ids(store, chain, [int(r[0]) for r in rows])


def tagpack_summary(store: ChainStore) -> list[dict[str, Any]]:
    """Imported packs: URI, kind, title, creator, tags, import time."""
    return [{"uri": u, "kind": k, "title": t, "creator": c, "tags": n, "imported_at": i}
            for u, k, t, c, n, i in store.con.execute(
                "SELECT uri, kind, title, creator, tag_count, imported_at FROM tagpacks ORDER BY uri"
            ).fetchall()]
