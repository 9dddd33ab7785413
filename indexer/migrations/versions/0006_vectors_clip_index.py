"""An index on vectors.clip_id: deleting a clip cascades to its vectors, and without it each deleted clip
scanned every vector (SQLite and PostgreSQL alike): re-indexing or removing one 100-clip video in a
300k-clip SQLite catalog took 49 s and 68 s. Still schema 5: a release before this revision reads the
catalog as it did (an index changes no row), so `meta` keeps its schema version.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    if "ix_vectors_clip" not in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("vectors")}:
        op.create_index("ix_vectors_clip", "vectors", ["clip_id"])
