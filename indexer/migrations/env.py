"""Alembic's entry point, run by `indexer.migrations.upgrade` on the connection it passes (no alembic.ini).

The caller owns the transaction (and the lock that serialises openers), so every revision of one upgrade
commits together, or none does on PostgreSQL.
"""

from alembic import context

context.configure(connection=context.config.attributes["connection"], render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
