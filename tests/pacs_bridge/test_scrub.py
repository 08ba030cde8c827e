"""The one scrubbing function: tag values out, what an administrator needs (types, UIDs, AE titles) in."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from factories import make_ct_series
from pacs_bridge.scrub import REDACTED, ScrubFilter, describe_error, error_trace, patient_values, scrub_text

VALUES = ("BIRTH1234X", "PIDQ77321", "Zyxäv", "Quørt", "19230417")


@pytest.mark.parametrize("message", [
    "Unable to convert 'BIRTH1234X' to 'DA' object",
    "Invalid value for VR DA: 'BIRTH1234X'. Please see <https://dicom.nema.org/x.html#t> for allowed values",
    "With tag (0010,0010) got exception: 'Zyxäv^Quørt' cannot be encoded",
    "patient Zyxäv^Quørt<&> born 19230417 id PIDQ77321",
    "PatientID=PIDQ77321 PatientBirthDate=BIRTH1234X",
    'value "Zyxäv^Quørt" b\'PIDQ77321\'',
])
def test_values_are_removed(message: str) -> None:
    out = scrub_text(message)
    assert not [v for v in VALUES if v.lower() in out.lower()], out
    assert REDACTED in out


@pytest.mark.parametrize("message", [
    "series 1.2.826.0.1.3680043.8.498.123: slice spacing varies (0.70–2.50 mm)",
    "destination pacs (ORTHANC@127.0.0.1:4242): association rejected",
    "C-STORE 1.2.3.4 refused (PROCESSING_FAILURE): cannot keep instance",
    "[Errno 2] No such file or directory: '/srv/aiws/var/spool/1.2.3/1.2.3.4.dcm'",
    "job 3 (echo_summary) study 1.2.3 done in 1.2 s: 1 objects",
    "Unable to convert <value> to 'DA' object",
    "worker worker-10577-1 exited with code -9; re-queueing its jobs",
    "association from CT_SCANNER_2 (127.0.0.2) refused: 3 connections are open from this address",
])
def test_safe_text_is_kept(message: str) -> None:
    assert scrub_text(message) == message


def test_known_values_are_removed_even_unquoted_and_plain() -> None:
    out = scrub_text("John Smith of Springfield, id 123", values={"Smith^John", "John", "Smith", "Springfield"})
    assert out == "<value> of <value>, id 123"


def test_describe_error_names_types_and_scrubs_the_message() -> None:
    try:
        try:
            int("BIRTH1234X")
        except ValueError as inner:
            raise RuntimeError(f"cannot read birth date '{inner.args[0]}'") from inner
    except RuntimeError as exc:
        text = describe_error(exc)
        trace = error_trace(exc)
    assert text.startswith("RuntimeError: cannot read birth date")
    assert text.endswith("(from ValueError)")
    assert "BIRTH1234X" not in text
    assert "test_scrub.py:" in trace and "BIRTH1234X" not in trace


def test_patient_values_reads_identifying_tags(tmp_path: Path) -> None:
    files = make_ct_series(tmp_path, n_slices=1, study_uid=generate_uid())
    values = patient_values(files)
    assert {"PHANTOM^TEST", "PHANTOM", "TEST", "PHANTOM001", "19600101", "ACC0001"} <= values
    assert not any(v.startswith("1.2.") for v in values)  # UIDs are not identifying values


def test_filter_scrubs_exceptions_and_third_party_messages(caplog: pytest.LogCaptureFixture) -> None:
    handler_filter = ScrubFilter()
    ours, theirs = logging.getLogger("aiws.test_scrub"), logging.getLogger("pydicom.test_scrub")
    records = []
    for logger, level in ((ours, logging.INFO), (ours, logging.WARNING), (theirs, logging.INFO)):
        try:
            raise ValueError("bad 'PIDQ77321'")
        except ValueError as exc:
            record = logger.makeRecord(logger.name, level, __file__, 1, "failed: %s (%s) from CT2 study %s",
                                       (exc, "value 'BIRTH1234X'", "1.2.3"),
                                       exc_info=(type(exc), exc, exc.__traceback__))
        assert handler_filter.filter(record)
        records.append(logging.Formatter().format(record))
    assert all("PIDQ77321" not in r and "ValueError: bad <value>" in r for r in records), records
    assert all("from CT2 study 1.2.3" in r for r in records), records
    assert "BIRTH1234X" in records[0]  # our own INFO messages are not second-guessed (the caller scrubs)
    assert "BIRTH1234X" not in records[1] and "BIRTH1234X" not in records[2]


@pytest.mark.parametrize("text", [
    "/" + "a/" * 20_000 + "A",  # a path that almost matches
    "/" + "1.2/" * 10_000 + "A",  # one of UIDs
    "x'" * 50_000,  # quotes that never close
    "Zyxäv^" * 30_000,
])
def test_pathological_text_is_scrubbed_quickly(text: str) -> None:
    t0 = time.perf_counter()
    out = scrub_text(text)
    assert len(out) <= 400 and "Zyxäv" not in out
    assert time.perf_counter() - t0 < 5.0  # generous: milliseconds when the patterns cannot backtrack
