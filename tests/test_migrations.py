"""The catalog's schema through Alembic (indexer/migrations), on SQLite and on a real PostgreSQL server:
the revisions make exactly the models' tables, and a catalog made before Alembic opens with every row kept."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import pytest
from sqlalchemy import create_engine, insert, select, text

from indexer import migrations
from indexer.catalog import Catalog
from indexer.schema import SCHEMA_VERSION, Base, Clip, IndexRun, Meta, Vector, VectorSet, Video, VideoPath

WHEN = datetime(2026, 1, 2, 3, 4, 5)


def test_head_is_alembics_head():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrations.SCRIPTS))
    assert ScriptDirectory.from_config(config).get_heads() == [migrations.HEAD]


def test_the_migrated_schema_is_the_models(catalog_url):
    """What Alembic creates is what indexer/schema.py declares: no column, index or constraint apart."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    Catalog(catalog_url).open().close()
    engine = create_engine(catalog_url)
    with engine.connect() as conn:
        assert migrations.revision(conn) == migrations.HEAD
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def _rows(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            table.name: sorted(tuple(row) for row in conn.execute(select(table)))
            for table in Base.metadata.sorted_tables
        }


def test_an_upgrade_from_the_current_schema_keeps_every_row(catalog_url):
    """A schema 5 catalog as the release before Alembic made it (create_all and a schema row, no alembic_version)
    opens at Alembic's head with every row of every table unchanged."""
    engine = create_engine(catalog_url)
    with engine.begin() as conn:
        Base.metadata.create_all(conn)
        conn.execute(text("DROP INDEX ix_vectors_clip"))  # revision 0006 added it
        conn.execute(insert(Meta), [{"key": "schema_version", "value": "5"}, {"key": "note", "value": "kept"}])
        conn.execute(insert(Video), [_video(1, "fp-a"), _video(2, "fp-b", status="failed", error="no stream")])
        conn.execute(insert(VideoPath), [_path(1, 1, "/lib/a.mp4"), _path(2, 1, "/lib/copy.mp4"), _path(3, 2, "/x")])
        conn.execute(
            insert(Clip), [{"id": i, "video_id": 1, "ordinal": i - 1, "start": i, "end": i + 1} for i in (1, 2)]
        )
        conn.execute(
            insert(VectorSet), [{"id": 1, "name": "video", "key": "k", "identity": "{}", "dim": 2, "version": 7}]
        )
        conn.execute(insert(Vector), [{"set_id": 1, "clip_id": i, "data": bytes([i]) * 8} for i in (1, 2)])
        conn.execute(insert(IndexRun), [{"id": 1, "started_at": WHEN, "status": "done", "roots": "[]", "report": "{}"}])
    before = _rows(engine)
    assert all(before.values())  # every table has rows to keep

    catalog = Catalog(catalog_url).open()
    assert (catalog.get_meta("note"), catalog.vector_set("video").version) == ("kept", 7)
    catalog.close()
    assert _rows(engine) == before
    with engine.connect() as conn:
        assert migrations.revision(conn) == migrations.HEAD
    engine.dispose()


def _video(id_: int, fingerprint: str, status: str = "indexed", error: str | None = None) -> dict:
    return {
        "id": id_,
        "fingerprint": fingerprint,
        "size": 1000,
        "status": status,
        "error": error,
        "duration": 4.0,
        "indexed_at": WHEN,
        "recorded_at": WHEN,
        "recorded_source": "metadata",
    }


def _path(id_: int, video_id: int, path: str) -> dict:
    return {"id": id_, "video_id": video_id, "path": path, "root": "/lib", "size": 1000, "mtime_ns": 5, "seen_at": WHEN}


def test_a_catalog_newer_than_this_release_is_refused_untouched(catalog_url):
    Catalog(catalog_url).open().close()
    engine = create_engine(catalog_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(Exception, match=f"has schema 99; this Tubelet reads schema {SCHEMA_VERSION}"):
        Catalog(catalog_url).open()
    with engine.connect() as conn:
        assert migrations.revision(conn) == "0099"
    engine.dispose()


def test_a_read_only_schema_4_catalog_says_how_to_upgrade_it(tmp_path, monkeypatch):
    from indexer import engine

    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    Catalog(url).open().close()
    with sqlite3.connect(tmp_path / "catalog.db") as conn:
        conn.execute("ALTER TABLE videos DROP COLUMN recorded_at")
        conn.execute("ALTER TABLE videos DROP COLUMN recorded_source")
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
        conn.execute("DROP TABLE alembic_version")
    monkeypatch.setattr(engine.os, "access", lambda path, mode: False)
    with pytest.raises(Exception, match="has schema 4 and is read-only; open it once with write access"):
        Catalog(url).open()
    monkeypatch.undo()
    catalog = Catalog(url).open()  # writable again: upgraded
    assert catalog.get_meta("schema_version") == str(SCHEMA_VERSION)
    catalog.close()
