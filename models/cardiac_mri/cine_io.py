"""From routed series to the cine array and the facts the measures need (disc geometry, HR, BSA, sex)."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from imaging.cine import Cine, load_cine
from imaging.rules import MatchRules
from imaging.series import InstanceHeader, SeriesInfo, choose, group_series
from models.cardiac_mri.function import DiscGeometry, bsa_from_dicom
from models.errors import NoSuitableSeries

LOGGER = logging.getLogger(__name__)

DEFAULT_SELECT: dict[str, Any] = {"Modality": "^MR$"}
MIN_LOCATIONS, MIN_PHASES = 3, 8
_SPACING_TOLERANCE = 0.1  # relative: a missing slice (double spacing) is refused, not silently mis-measured


def choose_series(series: Mapping[str, tuple[Path, ...]], rules: Mapping[str, Any], study_uid: str,
                  known: Mapping[Path, InstanceHeader] | None = None) -> SeriesInfo:
    """The cine to measure: matching *rules*, with the most instances. *known*: headers already read
    (``PipelineRequest.headers``), not read again.

    Raises:
        NoSuitableSeries: no routed series fits, naming the study and the rule.
    """
    files = [f for paths in series.values() for f in paths]
    chosen = choose(group_series(files, skip_unreadable=True, known=known).values(), MatchRules.parse(dict(rules)),
                    min_files=MIN_LOCATIONS * MIN_PHASES, prefer=lambda s: -len(s.files))
    if chosen is None:
        raise NoSuitableSeries(f"study {study_uid}: no series matches {dict(rules)} with "
                               f">= {MIN_LOCATIONS * MIN_PHASES} images")
    return chosen


@dataclass(frozen=True, eq=False)
class CineStack:
    """Images (phases, slices, rows, columns), disc geometry, times and the patient facts."""

    cine: Cine
    images: np.ndarray
    geometry: DiscGeometry
    trigger_times_ms: tuple[float, ...]
    heart_rate_bpm: float | None
    bsa_m2: float | None
    sex: str | None


def _number(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    try:
        number = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and number > 0 else None


def patient_facts(ds: Dataset) -> tuple[float | None, float | None, str | None]:
    """(heart rate /min from Heart Rate or Nominal Interval, BSA m² from Patient Size and Weight, sex M/F)."""
    hr = _number(ds, "HeartRate")
    if hr is None:
        rr = _number(ds, "NominalInterval")
        hr = 60000.0 / rr if rr else None
    height_m, weight = _number(ds, "PatientSize"), _number(ds, "PatientWeight")
    bsa, why_not = bsa_from_dicom(height_m, weight)  # Patient's Size in metres; a value in cm is refused
    if why_not and height_m and weight:
        LOGGER.warning("%s", why_not)  # the rule only: height and weight are patient data
    sex = str(ds.get("PatientSex", "")).upper()
    return hr, bsa, sex if sex in ("M", "F") else None


def disc_geometry(cine: Cine) -> DiscGeometry:
    """Pixel spacing, slice thickness and gap (= spacing between locations - thickness).

    Raises:
        NoSuitableSeries: fewer than 3 locations, no pixel spacing, or irregular spacing (a missing slice).
    """
    if len(cine.slices) < MIN_LOCATIONS:
        raise NoSuitableSeries(f"cine {cine.series_uid}: {len(cine.slices)} slice locations, need {MIN_LOCATIONS}")
    first = cine.slices[0].headers[0]
    if first.pixel_spacing is None:
        raise NoSuitableSeries(f"cine {cine.series_uid}: no Pixel Spacing")
    steps = np.abs(np.diff([s.position_mm for s in cine.slices]))
    spacing = float(np.median(steps))
    if np.any(np.abs(steps - spacing) > _SPACING_TOLERANCE * spacing):
        raise NoSuitableSeries(f"cine {cine.series_uid}: slice spacing varies ({steps.min():.2f}-{steps.max():.2f} mm); "
                               "a missing location would bias the disc volumes")
    thickness = float(first.thickness_mm) if first.thickness_mm else spacing
    return DiscGeometry((float(first.pixel_spacing[0]), float(first.pixel_spacing[1])), thickness, spacing - thickness)


def load_stack(files: tuple[Path, ...]) -> CineStack:
    """Read the cine and arrange it as (phases, slices, rows, columns).

    Raises:
        NoSuitableSeries: too few phases or locations, or irregular spacing; ImagingError from reading.
    """
    cine = load_cine(files)
    n_phases = cine.n_phases
    if n_phases < MIN_PHASES:
        raise NoSuitableSeries(f"cine {cine.series_uid}: {n_phases} phases, need {MIN_PHASES}")
    geometry = disc_geometry(cine)
    images = np.stack([np.stack([s.frames[p] for s in cine.slices]) for p in range(n_phases)]).astype(np.float32)
    times = tuple(float(t) for t in cine.slices[0].times[:n_phases])
    hr, bsa, sex = patient_facts(cine.slices[0].headers[0].source.header)
    LOGGER.debug("cine %s: %d phases x %d slices, disc %.1f mm + gap %.1f mm", cine.series_uid, n_phases,
                 len(cine.slices), geometry.slice_thickness_mm, geometry.gap_mm)
    return CineStack(cine, images, geometry, times, hr, bsa, sex)
