"""M&Ms (``mnms``): Multi-Centre, Multi-Vendor & Multi-Disease Cardiac Segmentation challenge (2020).

Published layout (Campello et al. 2021, IEEE TMI 40:3543; https://www.ub.edu/mnms/)::

    OpenDataset/
      201014_M&Ms_Dataset_Information_-_opendataset.csv    External code, VendorName, Vendor, Centre, ED, ES
                                                           (later releases add Pathology, Sex, Age, Height, Weight)
      Training/Labeled/A0S9V9/A0S9V9_sa.nii.gz             4-D cine short axis (x, y, slice, time)
      Training/Labeled/A0S9V9/A0S9V9_sa_gt.nii.gz          4-D labels, filled at the ED and ES frames only
      Validation/<code>/..., Testing/<code>/...            the same per case

ED and ES are 0-based frame indices on the 4th axis. Labels as published: 1 LV cavity, 2 LV myocardium,
3 RV cavity (note: not ACDC's order). Two cases per subject, ``<code>_ED`` and ``<code>_ES``; subjects
without ``_sa_gt`` (``Training/Unlabeled``) are skipped with a reason.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from training.readers.case import Case, CaseError, ImageLabels, Skipped
from training.readers.common import (
    DatasetError,
    attempt,
    label_map,
    nifti_frame,
    read_csv,
    require_columns,
    sources,
    without_sources,
)

LABELS = {1: "left ventricle", 2: "myocardium", 3: "right ventricle"}
COLUMNS = ("External code", "VendorName", "Vendor", "Centre", "ED", "ES")


def _csv(root: Path) -> Path:
    found = [p for p in sorted(root.glob("*.csv")) if "External code" in p.read_text(encoding="utf-8-sig")[:2000]]
    if not found:
        raise DatasetError("no dataset information CSV with an 'External code' column at the top of the folder "
                           "(M&Ms layout: 201014_M&Ms_Dataset_Information_-_opendataset.csv)")
    return found[0]


def read(root: Path) -> Iterator[Case | Skipped]:
    csv_path = _csv(root)
    rows = read_csv(csv_path)
    require_columns(rows, COLUMNS, csv_path.name)
    images = {p.name.removesuffix("_sa.nii.gz"): p for p in root.rglob("*_sa.nii.gz")}
    for row in rows:
        code = row["External code"]
        image_path = images.get(code)
        if image_path is None:
            yield Skipped(code, f"no {code}_sa.nii.gz in the dataset folder")
            continue
        for phase in ("ED", "ES"):
            case_id = f"{code}_{phase}"
            yield attempt(case_id, _case, root, csv_path, image_path, row, phase, case_id)


def _case(root: Path, csv_path: Path, image_path: Path, row: dict[str, str], phase: str, case_id: str) -> Case:
    label_path = image_path.with_name(image_path.name.replace("_sa.nii.gz", "_sa_gt.nii.gz"))
    if not label_path.is_file():
        raise CaseError(f"{label_path.name}: missing (unlabelled subject)")
    if not row[phase].isdigit():
        raise CaseError(f"{phase} frame {row[phase]!r} in {csv_path.name} is not a whole number")
    frame = int(row[phase])
    image = nifti_frame(image_path, frame)
    label = label_map(image, nifti_frame(label_path, frame), LABELS, f"{label_path.name} frame {frame}")
    extra = [("frame", str(frame))] + [(key.lower(), row[key]) for key in
                                       ("VendorName", "Vendor", "Centre", "Pathology", "Height", "Weight")
                                       if row.get(key)]
    return Case(case_id, without_sources(image), label, image_labels=ImageLabels(phase=phase, extra=tuple(extra)),
                sources=sources(root, [csv_path, image_path, label_path]))
