"""Library records and captured warnings never carry a quoted attribute value into the log."""
from __future__ import annotations

import logging

from aiws.logsetup import LibraryValueFilter
from pacs_bridge.scrub import ScrubFilter


def _through_filters(name: str, msg: str, *args: object) -> str:
    record = logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)
    for f in (LibraryValueFilter(), ScrubFilter()):
        assert f.filter(record)
    return record.getMessage()


def test_person_name_warning_from_highdicom_loses_the_name() -> None:
    text = ('/x/highdicom/valuerep.py:62: UserWarning: The string "ward" is unlikely to represent the intended '
            'person name since it contains only a single component.')
    out = _through_filters("py.warnings", text)
    assert "ward" not in out
    assert "unlikely to represent the intended person name" in out


def test_pydicom_invalid_value_loses_the_value() -> None:
    out = _through_filters("pydicom", "Invalid value for VR DA: %r. Please see <https://dicom.nema.org>", "smith")
    assert "smith" not in out and "Invalid value for VR DA" in out


def test_own_records_are_left_to_scrubbing() -> None:
    assert _through_filters("aiws.scheduler", "study %s: 'done'", "1.2.3") == "study 1.2.3: 'done'"
