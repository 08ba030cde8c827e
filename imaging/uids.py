"""Deterministic result UIDs: the same inputs always give the same UID.

A retried or re-run job therefore produces the same objects, and a PACS
replaces rather than duplicates them.

Why not ``pydicom.uid.generate_uid(prefix, entropy_srcs=parts)``: it would change every result UID a
site has already received (a re-run of an old study would then duplicate its results in the PACS
instead of replacing them), since it hashes with SHA-512 over the parts joined with nothing (ours:
SHA-256 over the parts joined with U+001F, so ``("ab", "c")`` and ``("a", "bc")`` do not collide as
they would there); and under the ``2.25`` root it appends up to 59 digits of the hash, a number past
2**128 that is not a UUID, where PS3.5 B.2 wants the UUID's integer (ours: a version-5-shaped UUID).
``tests/imaging/test_uids.py`` pins the UIDs derived today.
"""
from __future__ import annotations

import hashlib
import uuid

from imaging.errors import ImagingError


def derive_uid(root: str, *parts: str) -> str:
    """Return a UID under *root* derived from *parts* (order matters).

    ``root == "2.25"`` gives a UUID-derived UID (PS3.5 B.2, no registration
    needed); any other root gets a decimal suffix from a SHA-256 of the parts.

    Raises:
        ImagingError: the root leaves no room for a suffix.
    """
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    root = root.rstrip(".")
    if root == "2.25":
        return f"2.25.{uuid.UUID(bytes=digest[:16], version=5).int}"
    room = 64 - len(root) - 1
    if room < 10:
        raise ImagingError(f"UID root {root!r} is too long to derive UIDs (max 54 characters)")
    number = str(int.from_bytes(digest, "big"))[:room].lstrip("0") or "1"
    return f"{root}.{number}"


def result_uids(root: str, study_uid: str, pipeline: str, model_version: str, kind: str) -> tuple[str, str]:
    """(SeriesInstanceUID, SOPInstanceUID) of a result object of *kind* (``"sr"``, ``"seg"``, …)."""
    series = derive_uid(root, study_uid, pipeline, model_version, kind, "series")
    instance = derive_uid(root, study_uid, pipeline, model_version, kind, "instance")
    return series, instance


def device_uid(root: str, algorithm: str, version: str) -> str:
    """Device UID of an algorithm version (IHE AI Results): changes with the version."""
    return derive_uid(root, "device", algorithm, version)
