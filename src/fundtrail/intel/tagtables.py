"""The chain-store tables of the tag layer besides ``tags``: imported TagPacks and ActorPack actors.

Registered here, apart from TagPack parsing (:mod:`fundtrail.intel.tagpacks`, which needs YAML and
pydantic), so that the readers of tags (:mod:`fundtrail.intel.tagstore`, tracing) register them without
importing the parser.
"""

from __future__ import annotations

from fundtrail.intel import attribution  # noqa: F401  (registers the ``tags`` table first)
from fundtrail.store import schema

schema.register_table(
    "tagpacks",
    "uri VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, title VARCHAR, creator VARCHAR, header JSON, "
    "tag_count INTEGER NOT NULL, sha256 VARCHAR, imported_at TIMESTAMP NOT NULL",
)
schema.register_table(
    "actors",
    "id VARCHAR NOT NULL, label VARCHAR, uri VARCHAR, categories VARCHAR[], jurisdictions VARCHAR[], "
    "aliases VARCHAR[], lastmod VARCHAR, context JSON, actorpack VARCHAR NOT NULL",
)
