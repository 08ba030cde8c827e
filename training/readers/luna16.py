"""LUNA16 (``luna16``): LUng Nodule Analysis 2016, CT as MetaImage with nodule centres and diameters.

Published layout (Setio et al. 2017, Med Image Anal 42:1; https://luna16.grand-challenge.org/Data/)::

    subset0/ ... subset9/
      1.3.6.1.4.1.14519.5.2.1.6279.6001.<...>.mhd   MetaImage header: ObjectType = Image, NDims = 3,
                                                    TransformMatrix (direction cosines), Offset, ElementSpacing,
                                                    DimSize, ElementType = MET_SHORT, ElementDataFile = <uid>.raw
      1.3.6.1.4.1.14519.5.2.1.6279.6001.<...>.raw
    annotations.csv                                 seriesuid,coordX,coordY,coordZ,diameter_mm
                                                    (also found in CSVFILES/annotations.csv)

The world coordinates of ``annotations.csv`` are in the MetaImage's physical space, which is ITK's LPS (see
:mod:`training.readers.mhd`): a centre is used as LPS millimetres as it stands, and it must fall inside the
image. The nodules are those accepted by at least 3 of 4 LIDC readers, >= 3 mm; LUNA16 gives no nodule type.
A scan without an annotation row is a case without nodules (a negative).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from training.readers.case import Case, Nodule, Skipped
from training.readers.common import (
    DatasetError,
    attempt,
    read_csv,
    require_columns,
    sources,
    without_sources,
)
from training.readers.mhd import read_mhd

COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")


def _annotations(root: Path) -> Path:
    for path in (root / "annotations.csv", root / "CSVFILES" / "annotations.csv"):
        if path.is_file():
            return path
    raise DatasetError("no annotations.csv (LUNA16 layout: annotations.csv or CSVFILES/annotations.csv)")


def read(root: Path) -> Iterator[Case | Skipped]:
    csv_path = _annotations(root)
    rows = read_csv(csv_path)
    require_columns(rows, COLUMNS, csv_path.name)
    by_series: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_series.setdefault(row["seriesuid"], []).append(row)
    headers = sorted(root.glob("subset*/*.mhd")) or sorted(root.rglob("*.mhd"))
    if not headers:
        raise DatasetError("no subsetN/<seriesuid>.mhd found (LUNA16 layout)")
    for header in headers:
        uid = header.stem
        yield attempt(uid, _case, root, csv_path, header, by_series.get(uid, []))
    known = {h.stem for h in headers}
    for uid in sorted(set(by_series) - known):
        yield Skipped(uid, f"annotated in {csv_path.name} but no {uid}.mhd in the dataset")


def _case(root: Path, csv_path: Path, header: Path, rows: list[dict[str, str]]) -> Case:
    volume, files = read_mhd(header)
    nodules = tuple(Nodule((float(r["coordX"]), float(r["coordY"]), float(r["coordZ"])), float(r["diameter_mm"]))
                    for r in rows)
    return Case(header.stem, without_sources(volume), nodules=nodules, sources=sources(root, [*files, csv_path]))
