"""VinDr-Mammo (``vindr-mammo``): full-field digital mammograms (DICOM) with breast-level labels and boxes.

Published layout (Nguyen et al. 2023, Sci Data 10:277; PhysioNet "vindr-mammo" 1.0.0)::

    breast-level_annotations.csv   study_id, series_id, image_id, laterality, view_position, height, width,
                                   breast_birads ("BI-RADS 1".."BI-RADS 5"), breast_density ("DENSITY A".."D"),
                                   split
    finding_annotations.csv        study_id, series_id, image_id, laterality, view_position, height, width,
                                   breast_birads, breast_density, finding_categories (a list, e.g. "['Mass']"),
                                   finding_birads, xmin, ymin, xmax, ymax (pixels; empty for "No Finding"), split
    images/<study_id>/<image_id>.dicom

One case per image of ``breast-level_annotations.csv``: density, assessment (breast BI-RADS), laterality and view,
split in *extra*; boxes from ``finding_annotations.csv`` (x is the column, y the row) with their categories and
finding BI-RADS. A box outside the image, or an image whose size is not the CSV's height x width, skips the case.
"""
from __future__ import annotations

import ast
import math
from collections.abc import Iterator
from pathlib import Path

from training.readers.case import Box, Case, CaseError, ImageLabels, Skipped
from training.readers.common import (
    DatasetError,
    attempt,
    display_labels,
    image_2d,
    read_csv,
    require_columns,
    sources,
)

BREAST_COLUMNS = ("study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
                  "breast_birads", "breast_density", "split")
FINDING_COLUMNS = ("image_id", "finding_categories", "finding_birads", "xmin", "ymin", "xmax", "ymax")


def _after(value: str, prefix: str) -> str | None:
    value = value.strip()
    return value[len(prefix):].strip() if value.upper().startswith(prefix.upper()) else None


def read(root: Path) -> Iterator[Case | Skipped]:
    breast_csv, finding_csv = root / "breast-level_annotations.csv", root / "finding_annotations.csv"
    if not breast_csv.is_file():
        raise DatasetError("no breast-level_annotations.csv (VinDr-Mammo layout)")
    rows = read_csv(breast_csv)
    require_columns(rows, BREAST_COLUMNS, breast_csv.name)
    findings: dict[str, list[dict[str, str]]] = {}
    if finding_csv.is_file():
        frows = read_csv(finding_csv)
        require_columns(frows, FINDING_COLUMNS, finding_csv.name)
        for row in frows:
            findings.setdefault(row["image_id"], []).append(row)
    for row in rows:
        case_id = row["image_id"]
        csvs = [breast_csv] + ([finding_csv] if finding_csv.is_file() else [])
        yield attempt(case_id, _case, root, row, findings.get(case_id, []), csvs)


def _boxes(rows: list[dict[str, str]]) -> list[Box]:
    out = []
    for row in rows:
        coords = [row[k] for k in ("xmin", "ymin", "xmax", "ymax")]
        if not all(coords) or any(math.isnan(float(c)) for c in coords):
            continue  # "No Finding" rows carry no box
        x0, y0, x1, y1 = (float(c) for c in coords)
        try:
            categories = ast.literal_eval(row["finding_categories"])
        except (ValueError, SyntaxError):
            categories = [row["finding_categories"]]
        birads = _after(row["finding_birads"], "BI-RADS")
        out.append(Box(y0, x0, y1, x1, "; ".join(str(c) for c in categories), birads or None))
    return out


def _case(root: Path, row: dict[str, str], finding_rows: list[dict[str, str]], csvs: list[Path]) -> Case:
    path = root / "images" / row["study_id"] / f"{row['image_id']}.dicom"
    if not path.is_file():
        raise CaseError(f"images/{row['study_id']}/{row['image_id']}.dicom: missing")
    image, spacing = image_2d(path)
    size = (int(float(row["height"])), int(float(row["width"])))
    if image.shape[1:] != size:
        raise CaseError(f"image is {image.shape[1]}x{image.shape[2]} pixels, the CSV says {size[0]}x{size[1]}")
    density = _after(row["breast_density"], "DENSITY")
    labels = ImageLabels(density=density.lower() if density else None,
                         assessment=_after(row["breast_birads"], "BI-RADS") or None,
                         laterality=row["laterality"].upper() or None, view=row["view_position"].upper() or None,
                         extra=(("split", row["split"]), ("pixel_spacing", spacing), *display_labels(path)))
    return Case(row["image_id"], image, boxes=tuple(_boxes(finding_rows)), image_labels=labels,
                sources=sources(root, [path, *csvs]))
