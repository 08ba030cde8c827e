"""Deterministic result UIDs: pinned to the values derived today (a change would duplicate every re-run's
results in a PACS), and why pydicom's ``generate_uid(prefix, entropy_srcs=...)`` is not used for them."""
from __future__ import annotations

import uuid

import pytest
from pydicom.uid import UID, generate_uid

from imaging.errors import ImagingError
from imaging.uids import derive_uid, device_uid, result_uids

PARTS = ("1.2.3.4", "lung_nodules", "6", "sr", "series")


def test_derived_uids_are_the_ones_derived_so_far() -> None:
    assert result_uids("2.25", "1.2.3.4", "lung_nodules", "6", "sr") == (
        "2.25.139480652424195970751426897350426690405", "2.25.184336265001476257573642083263653548797")
    assert result_uids("1.2.826.0.1.3680043.8.498", "1.2.3.4", "lung_nodules", "6", "seg") == (
        "1.2.826.0.1.3680043.8.498.89120744533747412798694676795999935757",
        "1.2.826.0.1.3680043.8.498.18748981025132262419084211790497267329")
    assert device_uid("2.25", "lung_nodules", "6") == "2.25.135473028375510335418420190133589426689"


def test_derived_uids_are_valid_and_2_25_ones_are_uuids() -> None:
    for root in ("2.25", "1.2.826.0.1.3680043.8.498", "1.2.3." + "4" * 40):
        uid = derive_uid(root, *PARTS)
        assert UID(uid).is_valid and len(uid) <= 64
    arc = int(derive_uid("2.25", *PARTS).split(".")[-1])
    assert uuid.UUID(int=arc).version == 5
    with pytest.raises(ImagingError, match="too long"):
        derive_uid("1." + "2" * 55, *PARTS)


def test_parts_are_separated() -> None:
    assert derive_uid("2.25", "ab", "c") != derive_uid("2.25", "a", "bc")


def test_pydicom_generate_uid_would_change_them() -> None:
    """The reasons written in imaging/uids.py, measured: other UIDs, parts run together, a 2.25 arc past 2**128."""
    assert generate_uid("2.25.", entropy_srcs=list(PARTS)) != derive_uid("2.25", *PARTS)
    root = "1.2.826.0.1.3680043.8.498"
    assert generate_uid(root + ".", entropy_srcs=list(PARTS)) != derive_uid(root, *PARTS)
    assert generate_uid("2.25.", entropy_srcs=["ab", "c"]) == generate_uid("2.25.", entropy_srcs=["a", "bc"])
    assert int(generate_uid("2.25.", entropy_srcs=list(PARTS)).split(".")[-1]) > 2**128
