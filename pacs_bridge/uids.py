"""UID validation: every spool path is built from UIDs that passed :func:`validate_uid`."""
from __future__ import annotations

import re

from pacs_bridge.errors import InvalidInstance
from pacs_bridge.status import StoreStatus

# PS3.5 9.1: components of digits separated by '.', no leading zero in a
# multi-digit component, at most 64 characters.
_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_valid_uid(value: str) -> bool:
    """Return True when *value* is a syntactically valid DICOM UID."""
    return 0 < len(value) <= 64 and _UID_RE.match(value) is not None


def validate_uid(value: object, keyword: str) -> str:
    """Return *value* as a clean UID string.

    Raises:
        InvalidInstance: MISSING_UID when empty or absent, INVALID_UID when malformed.
    """
    if value is None or str(value).strip("\x00 ") == "":
        raise InvalidInstance(StoreStatus.MISSING_UID, f"{keyword} is missing")
    text = str(value).strip("\x00 ")
    if not is_valid_uid(text):
        shown = text[:70].encode("ascii", "backslashreplace").decode()
        raise InvalidInstance(
            StoreStatus.INVALID_UID, f"{keyword} {shown!r} is not a valid DICOM UID"
        )
    return text
