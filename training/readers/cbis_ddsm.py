"""CBIS-DDSM (``cbis-ddsm``): Curated Breast Imaging Subset of DDSM, film mammograms as DICOM with ROI masks.

Published layout (Lee et al. 2017, Sci Data 4:170177; TCIA collection CBIS-DDSM)::

    mass_case_description_train_set.csv    patient_id, breast_density, left or right breast, image view,
    mass_case_description_test_set.csv     abnormality id, abnormality type, mass shape, mass margins, assessment,
                                           pathology, subtlety, image file path, cropped image file path,
                                           ROI mask file path
    calc_case_description_train_set.csv   the same with "breast density" (a space), calc type, calc distribution
    calc_case_description_test_set.csv
    Mass-Training_P_00001_LEFT_CC/<StudyUID>/<SeriesUID>/000000.dcm            the full mammogram
    Mass-Training_P_00001_LEFT_CC_1/<StudyUID>/<SeriesUID>/000000.dcm          abnormality 1: ROI mask (and the
                                                                                 cropped image, another series)

The CSV paths name ``<folder>/<StudyUID>/<SeriesUID>/<file>``; TCIA's downloader writes other folder and file
names below ``<folder>``, so a path that is not found as written is found as the DICOM file below ``<folder>``
whose Series Instance UID is the path's third part (and, for a mask, whose size is the full image's: the
cropped image may share the series). One case per full image with all its abnormalities: labels 1 mass and
2 calcification from the ROI masks; density 1-4 -> BI-RADS a-d; assessment the highest of its abnormalities;
laterality and view from the CSV; pathology per abnormality in *extra*.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from training.readers.case import Case, CaseError, ImageLabels, LabelMap, Skipped
from training.readers.common import (
    DatasetError,
    attempt,
    display_labels,
    image_2d,
    read_csv,
    require_columns,
    sources,
)

LOGGER = logging.getLogger(__name__)
LABELS = {1: "mass", 2: "calcification"}
DENSITY = {"1": "a", "2": "b", "3": "c", "4": "d"}
COLUMNS = ("patient_id", "left or right breast", "image view", "abnormality id", "abnormality type", "assessment",
           "pathology", "image file path", "ROI mask file path")


def _find(root: Path, csv_path: str, shape: tuple[int, int] | None = None) -> Path:
    """The file a CSV path names (see the module docstring).

    Raises:
        CaseError: not found.
    """
    parts = [p for p in csv_path.replace("\\", "/").strip().split("/") if p]
    for base in (root, root / "CBIS-DDSM"):
        if parts and (base.joinpath(*parts)).is_file():
            return base.joinpath(*parts)
    if len(parts) < 3:
        raise CaseError(f"{csv_path}: not found and not <folder>/<study>/<series>/<file>")
    folder, series_uid = parts[0], parts[2]
    candidates = []
    for base in (root, root / "CBIS-DDSM"):
        for path in sorted(p for p in (base / folder).rglob("*") if p.is_file()):
            try:
                ds = dcmread(path, stop_before_pixels=True)
            except (InvalidDicomError, OSError, EOFError) as exc:
                LOGGER.debug("%s: %s is not a DICOM file (%s)", folder, path.name, type(exc).__name__)
                continue
            if str(ds.get("SeriesInstanceUID", "")) == series_uid and \
                    (shape is None or (int(ds.Rows), int(ds.Columns)) == shape):
                candidates.append(path)
    if not candidates:
        raise CaseError(f"{folder}/…/{series_uid}: no DICOM file of that series"
                        + (f" with the image's size {shape}" if shape else ""))
    return candidates[0]


def read(root: Path) -> Iterator[Case | Skipped]:
    csvs = sorted(root.glob("*_case_description_*.csv")) or sorted(root.rglob("*_case_description_*.csv"))
    if not csvs:
        raise DatasetError("no *_case_description_*.csv (CBIS-DDSM layout)")
    images: dict[str, list[tuple[Path, dict[str, str]]]] = {}
    for csv_path in csvs:
        table = read_csv(csv_path)
        require_columns(table, COLUMNS, csv_path.name)
        for row in table:
            images.setdefault(row["image file path"], []).append((csv_path, row))
    for image_path, rows in images.items():
        case_id = image_path.replace("\\", "/").split("/")[0]
        yield attempt(case_id, _case, root, case_id, image_path, rows)


def _rank(assessment: str) -> int:
    return int(assessment) if assessment.isdigit() else -1


def _case(root: Path, case_id: str, image_path: str, rows: list[tuple[Path, dict[str, str]]]) -> Case:
    image_file = _find(root, image_path)
    image, spacing = image_2d(image_file)
    shape = image.shape[1:]
    label = np.zeros(image.shape, dtype=np.int16)
    files = [image_file, *{c for c, _ in rows}]
    extra = [("pixel_spacing", spacing), *display_labels(image_file)]
    first = rows[0][1]
    for _, row in rows:
        kind = row["abnormality type"].lower()
        value = 1 if kind == "mass" else 2 if kind.startswith("calc") else None
        if value is None:
            raise CaseError(f"abnormality {row['abnormality id']}: type {row['abnormality type']!r} is not mass/calcification")
        mask_file = _find(root, row["ROI mask file path"], shape)
        mask, _ = image_2d(mask_file)
        if mask.shape != image.shape:
            raise CaseError(f"abnormality {row['abnormality id']}: ROI mask {mask.shape[1:]} is not the image's {shape}")
        if not np.any(mask.voxels > 0):
            raise CaseError(f"abnormality {row['abnormality id']}: ROI mask is empty")
        label[mask.voxels > 0] = value
        files.append(mask_file)
        extra.append((f"pathology_{row['abnormality id']}", row["pathology"]))
    density = first.get("breast_density") or first.get("breast density") or ""
    if density not in DENSITY:
        raise CaseError(f"breast density {density!r}: expected 1-4")
    assessment = max((row["assessment"] for _, row in rows), key=_rank)
    side = {"LEFT": "L", "RIGHT": "R"}.get(first["left or right breast"].upper())
    labels = ImageLabels(density=DENSITY[density], assessment=assessment, laterality=side,
                         view=first["image view"].upper(), extra=tuple(extra))
    return Case(case_id, image, LabelMap(label, LABELS), image_labels=labels, sources=sources(root, files))
