"""The catalog's schema, created and upgraded by Alembic (SQLite in batch mode, and PostgreSQL).

`Catalog.open()` runs the upgrade itself (indexer/engine.py takes the write lock around it), so there is
no alembic.ini and no command to run: a data dir or database made by an older release opens after an
upgrade. `versions/0005_baseline.py` is schema 5 and also adopts catalogs made before Alembic (schemas 3,
4 and 5, whose version is only in the `meta` table).

Adding a revision (say the one after 0006, with schema 6):
  1. change the model in indexer/schema.py and set SCHEMA_VERSION = 6 there;
  2. copy versions/0006_vectors_clip_index.py to versions/0007_<what>.py with `revision = "0007"` and
     `down_revision = "0006"`; in `upgrade()`, change tables through `with op.batch_alter_table(NAME) as
     batch:` (SQLite cannot ALTER most things; batch mode copies the table where it must; foreign keys
     are off while migrations run, and checked before the commit), and end with
     `op.execute(meta.update().where(meta.c.key == "schema_version").values(value="6"))` (`meta` as in
     0005_baseline.py): older releases read that row to refuse a catalog newer than they are. A revision
     that older releases can still read (an added index, like 0006) keeps the schema version;
  3. set HEAD = "0007" below. tests/test_migrations.py checks that HEAD is Alembic's head and that the
     migrated tables equal the models, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from indexer.schema import SCHEMA_VERSION

HEAD = "0006"  # the newest revision in versions/
SCRIPTS = Path(__file__).resolve().parent
# Alembic keeps the running migration in module globals (alembic.context, alembic.op): two upgrades in one
# process at once (threads opening two catalogs) would see each other's. The catalog's own lock orders
# openers of one catalog across processes; this orders them within a process.
_ALEMBIC = threading.Lock()


def stored_schema_version(conn: Connection) -> str | None:
    """The `meta` table's schema_version (as stored, maybe not a number), or None when there is none."""
    if "meta" not in inspect(conn).get_table_names():
        return None
    return conn.scalar(text("SELECT value FROM meta WHERE key = 'schema_version'"))


def revision(conn: Connection) -> str | None:
    """The Alembic revision the catalog is at; None before its first Alembic upgrade."""
    if "alembic_version" not in inspect(conn).get_table_names():
        return None
    return conn.scalar(text("SELECT version_num FROM alembic_version"))


def needs_upgrade(conn: Connection) -> bool:
    """Whether `upgrade` has work to do. A catalog this release must not touch (a newer schema, or a
    version that is not a number) needs none: `Catalog.open` refuses it with the reason."""
    stored = stored_schema_version(conn)
    if stored is not None and (not stored.isdigit() or int(stored) > SCHEMA_VERSION):
        return False
    return revision(conn) != HEAD


def upgrade(conn: Connection) -> None:
    """Run every revision after the catalog's own, on `conn`, inside the caller's transaction."""
    from alembic import command  # only when there is something to upgrade: opening stays light
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = conn
    with _ALEMBIC:
        command.upgrade(config, "head")
