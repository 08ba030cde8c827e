"""Ventricular volumes, ejection fraction and LV mass by the method of discs, as pure functions.

Conventions (also stated in the SR and the model card):

- Volume (ml) = sum over short-axis slices of (contour area, mm²) x (slice thickness + gap, mm) / 1000.
  The gap is the space between slices (spacing between slice centres minus thickness);
  forgetting it under-estimates every volume by gap / (thickness + gap).
- Papillary muscles and trabeculations are counted in the blood pool (cavity volume),
  not in the mass. Basal slice: a slice counts for the LV at a phase when its LV blood
  pool is at least half surrounded by LV myocardium (else it is atrial: background), so
  the base moves with the phase; see :mod:`models.cardiac_mri.segment`.
- End-diastole / end-systole: the phases of largest / smallest LV cavity volume (the
  earliest phase on ties). The RV uses its own largest / smallest volume phases.
- SV = EDV - ESV (ml); EF = SV / EDV x 100 (%); cardiac output = SV x heart rate / 1000 (l/min).
- LV mass = myocardial volume at end-diastole x 1.05 g/ml (myocardial volume = epicardial
  minus endocardial volume, i.e. the LV myocardium label).
- Body surface area, Mosteller: sqrt(height_cm x weight_kg / 3600) (m²), for a height of 30-250 cm
  and a weight of 1-400 kg; anything else is refused (a height in cm taken as metres would give
  17,500 cm and a BSA of ~18 m²). DICOM Patient's Size (0010,1020) is in METRES: a value outside
  0.3-2.5 m (e.g. 175, centimetres where metres are expected) is refused, never converted, and
  BSA-indexed values are then not reported (:func:`bsa_from_dicom` says why).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.errors import ModelError

LOGGER = logging.getLogger(__name__)

MYOCARDIAL_DENSITY_G_PER_ML = 1.05
HEIGHT_RANGE_CM = (30.0, 250.0)
WEIGHT_RANGE_KG = (1.0, 400.0)


@dataclass(frozen=True)
class DiscGeometry:
    """In-plane pixel spacing (row, column) and the through-plane slice thickness and gap, in mm."""

    pixel_spacing_mm: tuple[float, float]
    slice_thickness_mm: float
    gap_mm: float = 0.0

    def __post_init__(self) -> None:
        if min(self.pixel_spacing_mm) <= 0 or self.slice_thickness_mm <= 0:
            raise ModelError(
                f"disc geometry: pixel spacing {self.pixel_spacing_mm} mm and thickness "
                f"{self.slice_thickness_mm} mm must be > 0"
            )
        if self.slice_thickness_mm + self.gap_mm <= 0:
            raise ModelError(
                f"disc geometry: thickness {self.slice_thickness_mm} mm + gap {self.gap_mm} mm must be > 0"
            )

    @property
    def pixel_area_mm2(self) -> float:
        return self.pixel_spacing_mm[0] * self.pixel_spacing_mm[1]

    @property
    def disc_height_mm(self) -> float:
        return self.slice_thickness_mm + self.gap_mm


def disc_volume_ml(areas_mm2: Sequence[float], slice_thickness_mm: float, gap_mm: float) -> float:
    """Method of discs: sum(area) x (thickness + gap), in ml.

    Raises:
        ModelError: a negative area, or thickness + gap <= 0.
    """
    if slice_thickness_mm + gap_mm <= 0 or slice_thickness_mm <= 0:
        raise ModelError(f"disc volume: thickness {slice_thickness_mm} mm + gap {gap_mm} mm must be > 0")
    if any(a < 0 for a in areas_mm2):
        raise ModelError(f"disc volume: negative area in {list(areas_mm2)}")
    return float(sum(areas_mm2)) * (slice_thickness_mm + gap_mm) / 1000.0


def volume_curve_ml(masks: np.ndarray, geometry: DiscGeometry) -> np.ndarray:
    """Volume per phase (ml) of a boolean (phases, slices, rows, columns) mask stack.

    Raises:
        ModelError: the array is not 4D.
    """
    if masks.ndim != 4:
        raise ModelError(f"volume curve: expected (phases, slices, rows, columns), got shape {masks.shape}")
    counts = masks.reshape(masks.shape[0], -1).sum(axis=1).astype(np.float64)
    return counts * geometry.pixel_area_mm2 * geometry.disc_height_mm / 1000.0


def ed_es_phases(volumes_ml: Sequence[float]) -> tuple[int, int]:
    """(end-diastolic, end-systolic) phase indices: largest and smallest volume, earliest on ties.

    Raises:
        ModelError: fewer than two phases.
    """
    v = np.asarray(volumes_ml, dtype=np.float64)
    if v.size < 2:
        raise ModelError(f"ED/ES: a cine needs at least 2 phases, got {v.size}")
    return int(np.argmax(v)), int(np.argmin(v))


def ejection_fraction_pct(edv_ml: float, esv_ml: float) -> float:
    """EF = (EDV - ESV) / EDV x 100.

    Raises:
        ModelError: EDV <= 0, or ESV outside [0, EDV].
    """
    if edv_ml <= 0 or not 0 <= esv_ml <= edv_ml:
        raise ModelError(f"ejection fraction: EDV {edv_ml} ml must be > 0 and ESV {esv_ml} ml within [0, EDV]")
    return (edv_ml - esv_ml) / edv_ml * 100.0


def lv_mass_g(myocardial_volume_ml: float) -> float:
    """LV mass (g) = myocardial volume (ml) x 1.05 g/ml.

    Raises:
        ModelError: negative volume.
    """
    if myocardial_volume_ml < 0:
        raise ModelError(f"LV mass: myocardial volume {myocardial_volume_ml} ml must be >= 0")
    return myocardial_volume_ml * MYOCARDIAL_DENSITY_G_PER_ML


def cardiac_output_l_min(stroke_volume_ml: float, heart_rate_bpm: float) -> float:
    """Cardiac output (l/min) = SV (ml) x heart rate (/min) / 1000.

    Raises:
        ModelError: heart rate <= 0 or SV < 0.
    """
    if heart_rate_bpm <= 0 or stroke_volume_ml < 0:
        raise ModelError(f"cardiac output: heart rate {heart_rate_bpm}/min must be > 0, SV {stroke_volume_ml} >= 0")
    return stroke_volume_ml * heart_rate_bpm / 1000.0


def bsa_mosteller_m2(height_cm: float, weight_kg: float) -> float:
    """Body surface area (m²), Mosteller: sqrt(height_cm x weight_kg / 3600).

    Raises:
        ModelError: height outside 30-250 cm or weight outside 1-400 kg (e.g. a height in cm
            multiplied by 100 as if it were metres).
    """
    (h_lo, h_hi), (w_lo, w_hi) = HEIGHT_RANGE_CM, WEIGHT_RANGE_KG
    if not h_lo <= height_cm <= h_hi:
        raise ModelError(f"BSA: height {height_cm:g} cm outside {h_lo:g}-{h_hi:g} cm (a height in cm where metres "
                         "are expected?)")
    if not w_lo <= weight_kg <= w_hi:
        raise ModelError(f"BSA: weight {weight_kg:g} kg outside {w_lo:g}-{w_hi:g} kg")
    return math.sqrt(height_cm * weight_kg / 3600.0)


def bsa_from_dicom(patient_size_m: float | None, patient_weight_kg: float | None) -> tuple[float | None, str | None]:
    """(BSA m², None) from DICOM Patient's Size (metres) and Patient's Weight (kg), or (None, why not).

    The reason names the rule, never the values (they are patient data).
    """
    if patient_size_m is None or patient_weight_kg is None:
        return None, "BSA not computed: Patient's Size or Patient's Weight missing"
    if not HEIGHT_RANGE_CM[0] / 100 <= patient_size_m <= HEIGHT_RANGE_CM[1] / 100:
        return None, ("BSA not computed: Patient's Size is not a height in metres (0.3-2.5 m; centimetres given "
                      "where DICOM expects metres?)")
    if not WEIGHT_RANGE_KG[0] <= patient_weight_kg <= WEIGHT_RANGE_KG[1]:
        return None, "BSA not computed: Patient's Weight outside 1-400 kg"
    return bsa_mosteller_m2(patient_size_m * 100.0, patient_weight_kg), None


@dataclass(frozen=True)
class VentricleFunction:
    """Volumes (ml) and EF (%) of one ventricle, with the phases they come from."""

    edv_ml: float
    esv_ml: float
    ed_phase: int
    es_phase: int

    @property
    def sv_ml(self) -> float:
        return self.edv_ml - self.esv_ml

    @property
    def ef_pct(self) -> float:
        return ejection_fraction_pct(self.edv_ml, self.esv_ml)


def ventricle_function(volumes_ml: Sequence[float]) -> VentricleFunction:
    """ED/ES volumes of one ventricle from its volume curve (largest/smallest phase).

    Raises:
        ModelError: fewer than two phases, or a zero end-diastolic volume.
    """
    ed, es = ed_es_phases(volumes_ml)
    edv, esv = float(volumes_ml[ed]), float(volumes_ml[es])
    if edv <= 0:
        raise ModelError("ventricle function: no blood pool found in any phase (EDV = 0 ml)")
    return VentricleFunction(edv, esv, ed, es)


@dataclass(frozen=True)
class CardiacFunction:
    """LV and RV function with LV mass; optional heart rate and BSA derived values."""

    lv: VentricleFunction
    rv: VentricleFunction | None
    lv_mass_g: float
    heart_rate_bpm: float | None = None
    bsa_m2: float | None = None

    @property
    def cardiac_output_l_min(self) -> float | None:
        if self.heart_rate_bpm is None:
            return None
        return cardiac_output_l_min(self.lv.sv_ml, self.heart_rate_bpm)

    def indexed(self, value: float | None) -> float | None:
        """*value* / BSA, or None when either is unknown."""
        if value is None or self.bsa_m2 is None:
            return None
        return value / self.bsa_m2


@dataclass(frozen=True)
class LabelMasks:
    """Boolean (phases, slices, rows, columns) masks of the three labels."""

    lv_pool: np.ndarray
    lv_myo: np.ndarray
    rv_pool: np.ndarray


def cardiac_function(
    masks: LabelMasks,
    geometry: DiscGeometry,
    heart_rate_bpm: float | None = None,
    bsa_m2: float | None = None,
) -> CardiacFunction:
    """LV/RV volumes, EF and LV mass (at LV end-diastole) from label masks.

    Raises:
        ModelError: malformed masks, no LV blood pool, or fewer than two phases.
    """
    lv = ventricle_function(volume_curve_ml(masks.lv_pool, geometry))
    myo_ml = float(volume_curve_ml(masks.lv_myo[lv.ed_phase : lv.ed_phase + 1], geometry)[0])
    rv_curve = volume_curve_ml(masks.rv_pool, geometry)
    rv = ventricle_function(rv_curve) if rv_curve.max() > 0 else None
    if rv is None:
        LOGGER.info("cardiac function: no RV blood pool found; RV function not reported")
    return CardiacFunction(lv, rv, lv_mass_g(myo_ml), heart_rate_bpm, bsa_m2)
