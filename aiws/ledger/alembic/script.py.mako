"""${message}

The PostgreSQL side of ledger schema version N: write the SQLite migration in aiws/ledger/schema.py (MIGRATIONS[N])
too; tests/aiws/test_ledger_postgres.py checks that both schemas have the same tables and columns.

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""
from __future__ import annotations

from alembic import op

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}

#: The SQLite schema version this revision matches (aiws.ledger.schema.SCHEMA_VERSION).
SCHEMA_VERSION = 0

STATEMENTS: tuple[str, ...] = ()


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)
    op.execute(f"UPDATE meta SET value='{SCHEMA_VERSION}' WHERE key='schema_version'")


def downgrade() -> None:
    raise RuntimeError("the ledger is never downgraded: restore a backup taken before the upgrade")
