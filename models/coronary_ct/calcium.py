"""Agatston calcium scoring (Agatston 1990, JACC 15:827) and CAC-DRS (Hecht 2018), as pure functions.

Conventions (also stated in the SR and the model card):

- Candidate voxel: HU >= 130 (120 kVp). A lesion is a connected region within ONE
  axial slice, 8-connectivity in the slice plane.
- A lesion counts when its area (pixel count x pixel area) is >= 1.0 mm²
  (compared with a 1e-9 mm² tolerance so that e.g. 4 pixels of 0.5 x 0.5 mm count).
- Weight from the lesion's PEAK HU on its slice: 130-199 -> 1, 200-299 -> 2,
  300-399 -> 3, >= 400 -> 4, inclusive at the low end. Peak values between two
  integers (e.g. 199.5) fall in the band of the lower bound they pass
  (199.5 -> 1, 200.0 -> 2).
- Agatston (raw) = sum of area_mm2 x weight over lesions and slices. The reported
  score is the 3 mm equivalent: raw x (slice increment / 3 mm).
- Volume score = calcified voxel count x voxel volume, voxel volume = pixel area x
  slice increment (mm³). Not normalised.
- Mass score (mg) = c x sum(lesion volume (cm³) x lesion mean HU), c in mg/cm³ per HU
  from a calibration phantom; reported only when c is configured.
- Lesion count: the number of counted 2D lesions (Agatston's unit), per vessel and total.
- Acquisition: the 130 HU threshold and the weights are defined at 120 kVp on ECG-gated
  (prospectively triggered) scans. :func:`acquisition_problems` names what departs from that
  (another or an unknown tube voltage; no or unknown ECG gating); the pipeline writes these as
  warnings into every output, or refuses the series when configured to.
- CAC-DRS: A0 when the total is exactly 0 (no counted coronary lesion); otherwise the
  total rounded half up to an integer: < 100 -> A1 (any calcium is at least A1),
  100-299 -> A2, >= 300 -> A3. N = number of vessels among LM, LAD, LCx, RCA with a
  score > 0; written "A2/N3" (A0 carries no N).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
from scipy import ndimage

from models.errors import ModelError

LOGGER = logging.getLogger(__name__)

THRESHOLD_HU = 130.0
REFERENCE_KVP = 120.0
_KVP_TOLERANCE = 0.5
MIN_AREA_MM2 = 1.0
REFERENCE_INCREMENT_MM = 3.0
_AREA_TOLERANCE_MM2 = 1e-9
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


class Vessel(str, Enum):
    """Lesion labels. The integer order is the network's class index."""

    NONE = "not coronary"
    LM = "LM"
    LAD = "LAD"
    LCX = "LCx"
    RCA = "RCA"

    @property
    def index(self) -> int:
        return VESSEL_ORDER.index(self)


VESSEL_ORDER: tuple[Vessel, ...] = (Vessel.NONE, Vessel.LM, Vessel.LAD, Vessel.LCX, Vessel.RCA)
CORONARIES: tuple[Vessel, ...] = VESSEL_ORDER[1:]


@dataclass(frozen=True)
class Lesion:
    """One 2D calcium lesion on one axial slice.

    ``pixels`` are (row, column) indices on slice ``slice_index`` of the volume.
    """

    slice_index: int
    pixels: np.ndarray  # (n, 2) int
    area_mm2: float
    peak_hu: float
    mean_hu: float

    @property
    def weight(self) -> int:
        return agatston_weight(self.peak_hu)

    @property
    def agatston_raw(self) -> float:
        return self.area_mm2 * self.weight

    @property
    def centroid_rc(self) -> tuple[float, float]:
        centre = self.pixels.mean(axis=0)
        return float(centre[0]), float(centre[1])


@dataclass(frozen=True)
class ScanGeometry:
    """What scoring needs of the series: pixel spacing (row, column) and slice increment, in mm."""

    pixel_spacing_mm: tuple[float, float]
    increment_mm: float

    def __post_init__(self) -> None:
        if min(self.pixel_spacing_mm) <= 0 or self.increment_mm <= 0:
            raise ModelError(
                f"scan geometry: pixel spacing {self.pixel_spacing_mm} mm and increment "
                f"{self.increment_mm} mm must be > 0"
            )

    @property
    def pixel_area_mm2(self) -> float:
        return self.pixel_spacing_mm[0] * self.pixel_spacing_mm[1]

    @property
    def voxel_volume_mm3(self) -> float:
        return self.pixel_area_mm2 * self.increment_mm


@dataclass(frozen=True)
class VesselScore:
    """Scores of one vessel (or the total). ``mass_mg`` is None without a calibration factor."""

    agatston: float  # 3 mm equivalent
    agatston_raw: float
    volume_mm3: float
    mass_mg: float | None
    lesion_count: int


@dataclass(frozen=True)
class CalciumScore:
    vessels: Mapping[Vessel, VesselScore]  # LM, LAD, LCx, RCA, all present
    total: VesselScore
    increment_mm: float

    @property
    def cac_drs(self) -> str:
        n = sum(1 for v in CORONARIES if self.vessels[v].agatston > 0)
        return cac_drs(self.total.agatston, n)


def agatston_weight(peak_hu: float) -> int:
    """Agatston density weight of a lesion from its peak HU (0 below 130 HU)."""
    if peak_hu >= 400:
        return 4
    if peak_hu >= 300:
        return 3
    if peak_hu >= 200:
        return 2
    if peak_hu >= THRESHOLD_HU:
        return 1
    return 0


def normalised_agatston(raw: float, increment_mm: float) -> float:
    """3 mm-equivalent Agatston score: raw x (increment / 3 mm).

    Raises:
        ModelError: increment <= 0.
    """
    if increment_mm <= 0:
        raise ModelError(f"slice increment {increment_mm} mm must be > 0 for the 3 mm normalisation")
    return raw * increment_mm / REFERENCE_INCREMENT_MM


def find_lesions(hu: np.ndarray, geometry: ScanGeometry) -> list[Lesion]:
    """All counted 2D lesions of a (slices, rows, columns) HU volume, in slice order.

    Raises:
        ModelError: the array is not 3D.
    """
    if hu.ndim != 3:
        raise ModelError(f"calcium volume: expected (slices, rows, columns), got shape {hu.shape}")
    lesions: list[Lesion] = []
    for k in range(hu.shape[0]):
        plane = hu[k]
        mask = plane >= THRESHOLD_HU
        if not mask.any():
            continue
        labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
        for lab, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is None:
                continue
            local = np.argwhere(labels[box] == lab)
            area = local.shape[0] * geometry.pixel_area_mm2
            if area < MIN_AREA_MM2 - _AREA_TOLERANCE_MM2:
                continue
            pixels = local + np.array([box[0].start, box[1].start])
            values = plane[pixels[:, 0], pixels[:, 1]]
            lesions.append(Lesion(k, pixels, float(area), float(values.max()), float(values.mean())))
    LOGGER.debug("calcium: %d lesions on %d slices", len(lesions), hu.shape[0])
    return lesions


def _score(lesions: Sequence[Lesion], geometry: ScanGeometry, calibration: float | None) -> VesselScore:
    raw = sum(les.agatston_raw for les in lesions)
    volume = sum(les.area_mm2 * geometry.increment_mm for les in lesions)
    mass = None
    if calibration is not None:
        mass = calibration * sum(les.area_mm2 * geometry.increment_mm / 1000.0 * les.mean_hu for les in lesions)
    return VesselScore(
        agatston=normalised_agatston(raw, geometry.increment_mm),
        agatston_raw=raw,
        volume_mm3=volume,
        mass_mg=mass,
        lesion_count=len(lesions),
    )


def score(
    lesions: Sequence[Lesion],
    labels: Sequence[Vessel],
    geometry: ScanGeometry,
    calibration_mg_per_cm3_hu: float | None = None,
) -> CalciumScore:
    """Per-vessel and total scores of the lesions labelled coronary.

    Raises:
        ModelError: lesions and labels differ in length, or the calibration factor is <= 0.
    """
    if len(lesions) != len(labels):
        raise ModelError(f"calcium score: {len(lesions)} lesions but {len(labels)} labels")
    if calibration_mg_per_cm3_hu is not None and calibration_mg_per_cm3_hu <= 0:
        raise ModelError(f"calcium mass calibration factor {calibration_mg_per_cm3_hu} must be > 0")
    per_vessel = {v: [les for les, lab in zip(lesions, labels) if lab is v] for v in CORONARIES}
    vessels = {v: _score(ls, geometry, calibration_mg_per_cm3_hu) for v, ls in per_vessel.items()}
    coronary = [les for ls in per_vessel.values() for les in ls]
    return CalciumScore(vessels, _score(coronary, geometry, calibration_mg_per_cm3_hu), geometry.increment_mm)


def round_half_up(value: float) -> int:
    """Round to the nearest integer, halves away from zero for positive values (99.5 -> 100)."""
    return int(math.floor(value + 0.5))


def cac_drs(total_agatston: float, vessels_with_calcium: int) -> str:
    """CAC-DRS category string, e.g. ``"A0"``, ``"A2/N3"`` (see the module conventions).

    Raises:
        ModelError: negative score, or a vessel count outside 0-4 or inconsistent with the score.
    """
    if total_agatston < 0 or not 0 <= vessels_with_calcium <= 4:
        raise ModelError(f"CAC-DRS: score {total_agatston} must be >= 0 and vessels {vessels_with_calcium} in 0-4")
    if total_agatston == 0:
        if vessels_with_calcium:
            raise ModelError(f"CAC-DRS: score 0 with {vessels_with_calcium} calcified vessels")
        return "A0"
    if vessels_with_calcium == 0:
        raise ModelError(f"CAC-DRS: score {total_agatston} > 0 but no calcified vessel")
    rounded = round_half_up(total_agatston)
    if rounded < 100:
        grade = "A1"
    elif rounded < 300:
        grade = "A2"
    else:
        grade = "A3"
    return f"{grade}/N{vessels_with_calcium}"


def acquisition_problems(kvp: float | None, gating: str | None) -> list[str]:
    """Why an Agatston score of this acquisition is not the published Agatston score; [] when none.

    *kvp*: the tube voltage (DICOM KVP), None when not stated. *gating*: ``"gated"``, ``"not gated"``
    (Cardiac Synchronization Technique NONE) or None when the header does not say.
    """
    problems = []
    if kvp is None:
        problems.append("tube voltage not stated (no KVP): the 130 HU threshold and the weights are defined at "
                        "120 kVp; check the acquisition")
    elif abs(kvp - REFERENCE_KVP) > _KVP_TOLERANCE:
        problems.append(f"acquired at {kvp:g} kVp, not 120 kVp: the 130 HU threshold and the weights are defined at "
                        "120 kVp (calcium reads brighter at lower kVp, darker at higher), so this score is not "
                        "comparable with 120 kVp scores or published percentiles")
    if gating is None:
        problems.append("ECG gating not stated in the header (no Cardiac Synchronization Technique, Trigger Time or "
                        "cardiac phase): Agatston scoring is defined on ECG-gated scans; check the acquisition")
    elif gating == "not gated":
        problems.append("not ECG-gated (Cardiac Synchronization Technique NONE): cardiac motion blurs calcium, so "
                        "this score is not comparable with ECG-gated Agatston scores")
    return problems
