"""Index studies(last_received_at): the console dashboard's newest-first pages (on SQLite created at open with
schema 4, no version step; here a revision, so an existing database gets it too).

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: The SQLite schema version this revision matches.
SCHEMA_VERSION = 4


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_studies_received ON studies(last_received_at)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_studies_received")
