"""DIMSE status codes the bridge answers with (PS3.4 Annex B and PS3.7 Annex C)."""
from __future__ import annotations

from enum import IntEnum


class StoreStatus(IntEnum):
    """C-STORE response statuses. Never write raw hex codes elsewhere."""

    SUCCESS = 0x0000
    #: Refused: out of resources (disk below the watermark).
    OUT_OF_RESOURCES = 0xA700
    #: Error: data set does not match SOP class (e.g. pixel data too short).
    DATASET_MISMATCH = 0xA900
    #: Error: cannot understand (data set cannot be parsed).
    CANNOT_UNDERSTAND = 0xC000
    #: Error: cannot understand, a required UID is missing.
    MISSING_UID = 0xC001
    #: Error: cannot understand, a UID is not a valid DICOM UID.
    INVALID_UID = 0xC002
    #: Failure: processing failure (unexpected error while keeping the instance).
    PROCESSING_FAILURE = 0x0110
    #: Failure: duplicate SOP instance (PS3.7 C.4.2): the SOP Instance UID is already held under
    #: another study or series.
    DUPLICATE_SOP_INSTANCE = 0x0111


class EchoStatus(IntEnum):
    SUCCESS = 0x0000
