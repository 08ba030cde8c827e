"""Alembic migrations of the PostgreSQL ledger (run in code by :func:`aiws.ledger.pg.upgrade`)."""
