"""Headers read once: group_series and load_volume take InstanceHeader values already read and read only what
is missing or changed since; choose picks one series as each pipeline's rule says."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom.filereader

from factories import make_ct_series
from imaging.rules import MatchRules
from imaging.series import choose, group_series, read_instance
from imaging.volume import load_volume


def _count_parses(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    original = pydicom.filereader.read_partial

    def counted(fileobj, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(os.path.basename(getattr(fileobj, "name", "?")))
        return original(fileobj, *args, **kwargs)

    monkeypatch.setattr(pydicom.filereader, "read_partial", counted)
    return seen


def test_known_headers_are_not_read_again(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    files = make_ct_series(tmp_path / "ct", 6)
    known = {f: read_instance(f) for f in files}
    reference = load_volume(files)
    seen = _count_parses(monkeypatch)
    (info,) = group_series(files, known=known).values()
    volume = load_volume(info.instances)
    assert seen == []  # grouped and stacked without parsing a file (pixels read at their offset)
    np.testing.assert_array_equal(volume.voxels, reference.voxels)
    np.testing.assert_array_equal(volume.affine, reference.affine)


def test_a_changed_file_is_read_again(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    files = make_ct_series(tmp_path / "ct", 4)
    known = {f: read_instance(f) for f in files}
    changed = files[2]
    data = changed.read_bytes()
    changed.write_bytes(data + b"\x00\x00")  # trailing padding: another size, so not the file that was read
    seen = _count_parses(monkeypatch)
    (info,) = group_series(files, known=known).values()
    load_volume(info.instances)
    assert seen == [changed.name]


def test_choose_follows_the_rule_and_the_preference(tmp_path: Path) -> None:
    thin = make_ct_series(tmp_path / "thin", 12, spacing=(0.7, 0.7, 1.0), description="THIN")
    thick = make_ct_series(tmp_path / "thick", 12, spacing=(0.7, 0.7, 3.0), description="THICK")
    few = make_ct_series(tmp_path / "few", 3, spacing=(0.7, 0.7, 1.0), description="FEW")
    series = group_series(thin + thick + few)
    by_description = {s.description: s for s in series.values()}
    rules = MatchRules.parse({"Modality": "^CT$"})
    thinnest = choose(series.values(), rules, prefer=lambda s: float(s.get("SliceThickness", 99)), min_files=10)
    assert thinnest is by_description["THIN"]
    near_3mm = choose(series.values(), rules, prefer=lambda s: abs(float(s.get("SliceThickness", 3)) - 3.0))
    assert near_3mm is by_description["THICK"]
    assert choose(series.values(), MatchRules.parse({"Modality": "^MR$"}), prefer=len) is None
