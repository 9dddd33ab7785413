"""Baseline: schema 5, for a new catalog or one made before Tubelet used Alembic (schema 3, 4 or 5).

Frozen: the tables as schema 5 had them, written out here rather than taken from indexer/schema.py, so
this revision means the same thing after the models move on. A catalog that predates Alembic has no
alembic_version row; its schema version is in `meta`, and the steps below bring it to schema 5 in batch
mode (which on SQLite adds these columns in place).
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = None


def upgrade() -> None:
    conn = op.get_bind()
    if "videos" not in sa.inspect(conn).get_table_names():
        _create_schema_5()
        return
    meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text))
    version = conn.scalar(sa.select(meta.c.value).where(meta.c.key == "schema_version"))
    if version == "3":
        _from_3_to_4()
    if version in ("3", "4"):  # schema 4 -> 5: recorded_* empty (not looked yet; the next index run fills them)
        _add_missing("videos", sa.Column("recorded_at", sa.DateTime()), sa.Column("recorded_source", sa.String(16)))
    if version is None:
        op.bulk_insert(meta, [{"key": "schema_version", "value": "5"}])
    else:
        op.execute(meta.update().where(meta.c.key == "schema_version").values(value="5"))


def _from_3_to_4() -> None:
    """Schema 3 -> 4: every vector set gets a generation of its own."""
    _add_missing("vector_sets", sa.Column("generation", sa.String(32), nullable=False, server_default=""))
    conn = op.get_bind()
    sets = sa.table("vector_sets", sa.column("id", sa.Integer), sa.column("generation", sa.String))
    for set_id in conn.scalars(sa.select(sets.c.id)).all():
        conn.execute(sets.update().where(sets.c.id == set_id).values(generation=secrets.token_hex(6)))


def _add_missing(table: str, *columns: sa.Column) -> None:
    """Add the columns `table` lacks (a catalog that an older Tubelet half-migrated may have some)."""
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}
    missing = [c for c in columns if c.name not in have]
    if missing:
        with op.batch_alter_table(table) as batch:
            for column in missing:
                batch.add_column(column)


def _create_schema_5() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("roots", sa.Text(), nullable=False),
        sa.Column("report", sa.Text()),
    )
    op.create_table(
        "vector_sets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(32), nullable=False, unique=True),
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("identity", sa.Text(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.String(32), nullable=False),
    )
    op.create_table(
        "videos",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("codec", sa.String(32)),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("fps", sa.Float()),
        sa.Column("duration", sa.Float()),
        sa.Column("frames", sa.Integer()),
        sa.Column("indexed_at", sa.DateTime()),
        sa.Column("recorded_at", sa.DateTime()),
        sa.Column("recorded_source", sa.String(16)),
        sqlite_autoincrement=True,  # a deleted row's id is never reused
    )
    op.create_table(
        "clips",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("video_id", sa.Integer(), sa.ForeignKey("videos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("thumbnail", sa.Text()),
        sqlite_autoincrement=True,  # clip ids are FAISS ids: never reused
    )
    op.create_index("ix_clips_video", "clips", ["video_id", "ordinal"], unique=True)
    op.create_table(
        "paths",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("video_id", sa.Integer(), sa.ForeignKey("videos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("path", sa.Text(), nullable=False, unique=True),
        sa.Column("root", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_paths_video_id", "paths", ["video_id"])
    op.create_table(
        "vectors",
        sa.Column("set_id", sa.Integer(), sa.ForeignKey("vector_sets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("clip_id", sa.Integer(), sa.ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text))
    op.bulk_insert(meta, [{"key": "schema_version", "value": "5"}])
