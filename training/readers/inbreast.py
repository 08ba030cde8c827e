"""INbreast (``inbreast``): full-field digital mammograms (DICOM) with OsiriX XML (plist) outlines.

Published layout (Moreira et al. 2012, Acad Radiol 19:236; "INbreast Release 1.0")::

    INbreast.csv          semicolon-separated: Patient ID;Patient age;Laterality;View;Acquisition date;
                          File Name;ACR;Bi-Rads      (patient fields "removed"; ACR 1-4; Bi-Rads 1-6, 4a/4b/4c)
    AllDICOMs/<File Name>_<hash>_MG_<L|R>_<CC|ML>_ANON.dcm
    AllXML/<File Name>.xml    an Apple plist: {Images: [{ImageIndex, NumberOfROIs, ROIs: [{Name ("Mass",
                              "Calcification", "Cluster", …), NumberOfPoints, Point_px: ["(x, y)", …],
                              Point_mm, Area, Center, …}]}]}

One case per CSV row; images without an XML (normal images) are cases without outlines. Outlines are filled into
labels 1 mass, 2 calcification (a one-point calcification is one pixel), 3 cluster, 4 other (spiculated region,
asymmetry, distortion …) and given as boxes with their ROI name; ACR 1-4 -> density a-d; Bi-Rads as assessment.
Point_px is (x = column, y = row) in pixels.
"""
from __future__ import annotations

import plistlib
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from matplotlib.path import Path as Polygon

from training.readers.case import Box, Case, CaseError, ImageLabels, LabelMap, Skipped
from training.readers.common import (
    DatasetError,
    attempt,
    display_labels,
    image_2d,
    read_csv,
    require_columns,
    sources,
)

LABELS = {1: "mass", 2: "calcification", 3: "cluster", 4: "other"}
DENSITY = {"1": "a", "2": "b", "3": "c", "4": "d"}
COLUMNS = ("Laterality", "View", "File Name", "ACR", "Bi-Rads")
_POINT = re.compile(r"\(\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*(?:,\s*[-+0-9.eE]+\s*)?\)")


def _value(name: str) -> int:
    lower = name.strip().lower()
    return 1 if lower == "mass" else 2 if lower.startswith("calcification") else 3 if lower == "cluster" else 4


def read(root: Path) -> Iterator[Case | Skipped]:
    csv_path = root / "INbreast.csv"
    if not csv_path.is_file():
        raise DatasetError("no INbreast.csv (INbreast layout: INbreast.csv, AllDICOMs/, AllXML/)")
    rows = read_csv(csv_path, delimiter=";")
    require_columns(rows, COLUMNS, csv_path.name)
    dicoms: dict[str, Path] = {}
    for path in sorted((root / "AllDICOMs").glob("*.dcm")):
        dicoms.setdefault(path.name.split("_", 1)[0], path)
    for row in rows:
        name = row["File Name"]
        yield attempt(name, _case, root, csv_path, row, dicoms.get(name))


def _points(roi: dict) -> np.ndarray:  # type: ignore[type-arg]
    pts = []
    for text in roi.get("Point_px", []):
        match = _POINT.fullmatch(str(text).strip())
        if match is None:
            raise CaseError(f"ROI {roi.get('Name', '?')}: point {str(text)[:30]!r} is not '(x, y)'")
        pts.append((float(match.group(1)), float(match.group(2))))
    if not pts:
        raise CaseError(f"ROI {roi.get('Name', '?')}: no Point_px")
    return np.array(pts)


def _fill(label: np.ndarray, xy: np.ndarray, value: int) -> Box:
    rows, cols = label.shape
    if xy[:, 0].min() < -0.5 or xy[:, 1].min() < -0.5 or xy[:, 0].max() > cols - 0.5 or xy[:, 1].max() > rows - 0.5:
        raise CaseError(f"{LABELS[value]} outline reaches outside the {rows}x{cols} image")
    c0, r0 = (int(np.floor(v)) for v in xy.min(axis=0))
    c1, r1 = (int(np.ceil(v)) + 1 for v in xy.max(axis=0))
    c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, cols), min(r1, rows)
    if len(xy) < 3:
        for x, y in np.rint(xy).astype(int):
            label[y, x] = value
    else:
        rr, cc = np.mgrid[r0:r1, c0:c1]
        inside = Polygon(xy).contains_points(np.column_stack([cc.ravel(), rr.ravel()]), radius=0.5)
        label[r0:r1, c0:c1][inside.reshape(rr.shape)] = value
    return Box(float(r0), float(c0), float(r1), float(c1), LABELS[value])


def _case(root: Path, csv_path: Path, row: dict[str, str], dicom: Path | None) -> Case:
    name = row["File Name"]
    if dicom is None:
        raise CaseError(f"AllDICOMs/{name}_*.dcm: missing")
    image, spacing = image_2d(dicom)
    files = [csv_path, dicom]
    label = np.zeros(image.shape[1:], dtype=np.int16)
    boxes = []
    xml = root / "AllXML" / f"{name}.xml"
    if xml.is_file():
        try:
            doc = plistlib.loads(xml.read_bytes())
        except (plistlib.InvalidFileException, ValueError) as exc:
            raise CaseError(f"AllXML/{name}.xml: not a plist ({type(exc).__name__})") from None
        files.append(xml)
        for item in doc.get("Images", []):
            for roi in item.get("ROIs", []):
                box = _fill(label, _points(roi), _value(str(roi.get("Name", ""))))
                boxes.append(Box(box.row0, box.col0, box.row1, box.col1, str(roi.get("Name", "")) or box.category))
    density = row["ACR"].strip()
    if density and density not in DENSITY:
        raise CaseError(f"ACR density {density!r}: expected 1-4")
    labels = ImageLabels(density=DENSITY.get(density), assessment=row["Bi-Rads"].strip().upper() or None,
                         laterality=row["Laterality"].strip().upper() or None, view=row["View"].strip().upper() or None,
                         extra=(("pixel_spacing", spacing), *display_labels(dicom)))
    label_map = LabelMap(label[np.newaxis], LABELS) if label.any() else None
    return Case(name, image, label_map, boxes=tuple(boxes), image_labels=labels, sources=sources(root, files))
