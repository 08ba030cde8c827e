"""Errors raised by the PACS bridge."""
from __future__ import annotations

from pacs_bridge.status import StoreStatus


class BridgeError(Exception):
    """Base class of every error raised by :mod:`pacs_bridge`."""


class InvalidInstance(BridgeError):
    """A received instance cannot be kept; carries the DIMSE status to answer with."""

    def __init__(self, status: StoreStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SpoolFull(InvalidInstance):
    """Free space under the spool is below the configured watermark."""

    def __init__(self, reason: str) -> None:
        super().__init__(StoreStatus.OUT_OF_RESOURCES, reason)


class SendError(BridgeError):
    """A C-STORE or C-ECHO to a destination failed (association or DIMSE status)."""
