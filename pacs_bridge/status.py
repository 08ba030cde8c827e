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


class StoreWarning(IntEnum):
    """C-STORE warnings a peer answers (PS3.4 B.2.3): the instance is stored all the same."""

    COERCION_OF_DATA_ELEMENTS = 0xB000
    ELEMENTS_DISCARDED = 0xB006
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xB007


#: C-STORE statuses that mean the peer kept the instance.
STORED = frozenset({int(StoreStatus.SUCCESS), *(int(w) for w in StoreWarning)})


class QueryRetrieveStatus(IntEnum):
    """C-FIND, C-GET and C-MOVE response statuses (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.5)."""

    SUCCESS = 0x0000
    PENDING = 0xFF00
    #: Pending: matches continue, optional keys not supported.
    PENDING_WARNING = 0xFF01
    #: Warning (C-GET, C-MOVE): sub-operations complete, one or more failures or warnings.
    SUB_OPERATIONS_WITH_FAILURES = 0xB000


#: The statuses of a C-FIND response that carries a match.
PENDING = frozenset({int(QueryRetrieveStatus.PENDING), int(QueryRetrieveStatus.PENDING_WARNING)})
#: Final C-GET / C-MOVE statuses after which what was retrieved is kept.
RETRIEVED = frozenset({int(QueryRetrieveStatus.SUCCESS), int(QueryRetrieveStatus.SUB_OPERATIONS_WITH_FAILURES)})


class RejectResult(IntEnum):
    """A-ASSOCIATE-RJ Result (PS3.8 9.3.4)."""

    PERMANENT = 0x01
    TRANSIENT = 0x02


class RejectSource(IntEnum):
    """A-ASSOCIATE-RJ Source (PS3.8 9.3.4)."""

    SERVICE_USER = 0x01


class RejectReason(IntEnum):
    """A-ASSOCIATE-RJ Reason/Diag. when the source is the service user (PS3.8 9.3.4)."""

    NO_REASON = 0x01
    CALLING_AE_TITLE_NOT_RECOGNISED = 0x03
    CALLED_AE_TITLE_NOT_RECOGNISED = 0x07
