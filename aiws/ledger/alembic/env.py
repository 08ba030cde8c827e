"""Alembic environment of the PostgreSQL ledger. Run by :func:`aiws.ledger.pg.upgrade` with a Config built in
code: ``config.attributes["connection"]`` is the SQLAlchemy connection to migrate (no alembic.ini, no URL here).

The migration runs in one transaction under a session advisory lock, so nodes that start together migrate the
database once: the second waits, then finds it at head.
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import text

#: pg_advisory_lock key held while migrating ("AIWSMIGR").
MIGRATION_LOCK = 0x4149_5753_4D49_4752


def run_migrations() -> None:
    connection = context.config.attributes["connection"]
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
    connection.commit()
    try:
        context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
        connection.commit()


run_migrations()
