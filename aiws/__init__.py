"""AIWS composition root: configuration, ledger, workers, routing, HTTP API and CLI."""

__version__ = "0.1.0"
