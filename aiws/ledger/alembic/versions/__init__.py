"""Alembic revisions: one per ledger schema version after 4 (``NNNN_schemaN.py``), each with ``SCHEMA_VERSION``."""
