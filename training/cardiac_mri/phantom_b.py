"""Short-axis cine MR phantoms of the second family (family B), built independently of family A.

Same truth format as family A (labels 1 LV blood pool, 2 LV myocardium, 3 RV blood pool; trabeculae and
papillary muscles labelled blood pool; volumes by the method of discs on the label volumes), so every
evaluator reads it. What differs: the LV is a "bullet" (super-ellipsoid profile with its own exponent and a
wall thinning toward the apex), its cavity has a trabecular fringe (myocardial signal, labelled pool) and
two or three papillary muscles of their own size; the RV wraps around the septum as a wider crescent; the
stack has 6-16 slices of 5-10 mm with 0-5 mm gaps and may start below the base or stop above the apex
(partial coverage: the truth is what the acquired slices show); each slice is shifted in-plane by its
breath-hold (misregistration; image and labels move together); a smooth random multiplicative bias field
(coil sensitivity) and Rician noise on a different intensity scale.

``make_cine_b(seed)`` returns a :class:`CineB` (``draw_b(seed)`` and ``render_b(params, phase, slice)``
give one slice at a time, for training); :meth:`CineB.truth` is the true function by the pipeline's
own method of discs on the truth label volumes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from models.cardiac_mri.function import CardiacFunction, DiscGeometry, bsa_mosteller_m2, cardiac_function
from training.cardiac_mri.phantom import LV_MYO, LV_POOL, RV_POOL, masks_from_labels


@dataclass
class CineB:
    """A family-B cine: images and labels (phases, slices, rows, columns) with what the truth needs."""

    seed: int
    images: np.ndarray
    labels: np.ndarray
    geometry: DiscGeometry
    heart_rate_bpm: float
    height_cm: float
    weight_kg: float
    info: dict[str, object] = field(default_factory=dict)

    @property
    def bsa_m2(self) -> float:
        return bsa_mosteller_m2(self.height_cm, self.weight_kg)

    def truth(self) -> CardiacFunction:
        """LV/RV function from the truth label volumes (method of discs, as the pipeline computes it)."""
        return cardiac_function(masks_from_labels(self.labels), self.geometry, self.heart_rate_bpm, self.bsa_m2)


@dataclass(frozen=True)
class _Heart:
    r_endo: float
    wall: float
    length: float
    power: float
    contraction: float
    base_descent: float
    t_es: float
    rv_width: float
    rv_contraction: float
    trabecular_mm: float
    fat_mm: float
    papillary: tuple[tuple[float, float], ...]  # (angle rad, radius mm)


def _squeeze(t: float, t_es: float) -> float:
    """0 at end-diastole, 1 at end-systole; a faster ejection and a slower filling than family A."""
    if t <= t_es:
        return math.sin(0.5 * math.pi * t / t_es) ** 2
    return max(0.0, 1.0 - ((t - t_es) / (1 - t_es)) ** 0.5)


def _profile(h: _Heart, rel: float) -> float:
    """Radius fraction at *rel* (0 base .. 1 apex) of a super-ellipsoid of exponent ``power``."""
    return (1.0 - min(max(rel, 0.0), 1.0) ** h.power) ** (1.0 / h.power) if rel < 1 else 0.0


def _bias(rng: np.random.Generator, shape: tuple[int, int], strength: float) -> np.ndarray:
    coarse = rng.normal(0, 1, (4, 4))
    field_ = ndimage.zoom(coarse, (shape[0] / 4, shape[1] / 4), order=3)[: shape[0], : shape[1]]
    return np.exp(strength * field_ / max(float(np.abs(field_).max()), 1e-6)).astype(np.float32)


def _slice(h: _Heart, s: float, f: float, x: np.ndarray, y: np.ndarray,
           tones: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(image, labels) at level *s* (mm from the diastolic base toward the apex) and contraction *f*."""
    img = np.full(x.shape, 0.01, dtype=np.float32)
    lab = np.zeros(x.shape, dtype=np.uint8)
    r = np.hypot(x, y)
    body = np.hypot((x + 10) / 1.45, y + 5)
    img[body < 118] = tones["fat"]
    img[body < 110] = tones["tissue"]
    img[np.hypot((x - 75) / 0.9, (y + 5) / 1.2) < 45] = tones["lung"]
    img[np.hypot((x + 85) / 0.8, (y + 10) / 1.2) < 40] = tones["lung"]
    base = h.base_descent * f
    if s < base:  # atrium: blood and a thin wall, no ventricular label
        img[r < h.r_endo * 0.9 + 2] = tones["myo"]
        img[r < h.r_endo * 0.9] = tones["blood"]
        return img, lab
    rel = (s - base) / (h.length - base)
    thin = 1.0 - 0.5 * min(max(rel, 0.0), 1.0)
    endo = h.r_endo * (1 - h.contraction * f) * _profile(h, rel)
    ed_endo = h.r_endo * _profile(h, rel)
    ed_epi = ed_endo + h.wall * thin
    epi = math.sqrt(endo ** 2 + max(ed_epi ** 2 - ed_endo ** 2, 0.0)) if rel < 1 else h.wall * thin * max(0.0, 1 - (
        s - h.length) / (h.wall * thin + 1e-6))
    if epi <= 0.5:
        return img, lab
    rv_rel = rel / 0.8
    if rv_rel < 1:
        taper = math.sqrt(1 - rv_rel ** 2)
        ax = (epi + h.rv_width * (1 - h.rv_contraction * f)) * taper + 2
        ay = epi * 1.45 * max(taper, 0.45)
        cx = -epi * 0.7
        crescent = (((x - cx) / ax) ** 2 + (y / ay) ** 2 <= 1) & (r > epi + 2.0)
        wall = (((x - cx) / (ax + 2.5)) ** 2 + (y / (ay + 2.5)) ** 2 <= 1) & (r > epi)
        img[wall] = tones["myo"]
        img[crescent] = tones["blood"]
        lab[crescent] = RV_POOL
    img[(r <= epi + h.fat_mm) & (lab == 0)] = tones["fat"]  # epicardial fat
    img[r <= epi] = tones["myo"]
    lab[r <= epi] = LV_MYO
    if endo > 1.0:
        pool = r <= endo
        img[pool] = tones["blood"]
        lab[pool] = LV_POOL
        theta = np.arctan2(y, x)
        fringe = pool & (r > endo - h.trabecular_mm) & (np.cos(17 * theta + 3 * np.sin(5 * theta)) > 0.55)
        img[fringe] = 0.5 * (tones["myo"] + tones["blood"])
        if 0.2 <= rel <= 0.8:
            for angle, pr in h.papillary:
                d = endo - pr - 1.0
                if d > pr:
                    img[np.hypot(x - d * math.cos(angle), y - d * math.sin(angle)) <= pr] = tones["myo"]
    return img, lab


@dataclass(frozen=True, eq=False)
class CineBParams:
    """Everything drawn from a family-B seed: the heart, the stack, the tones and the acquisition."""

    seed: int
    heart: _Heart
    thickness_mm: float
    gap_mm: float
    first_slice_mm: float
    n_slices: int
    n_phases: int
    rows: int
    pixel_mm: float
    tones: dict[str, float]
    shifts_mm: np.ndarray  # (slices, 2) breath-hold misregistration
    centre_mm: np.ndarray  # (2,)
    angle: float
    bias: np.ndarray  # (rows, columns) multiplicative coil sensitivity
    noise: float
    gain: float
    sex: str
    heart_rate_bpm: float
    height_cm: float
    weight_kg: float

    @property
    def geometry(self) -> DiscGeometry:
        return DiscGeometry((self.pixel_mm, self.pixel_mm), self.thickness_mm, self.gap_mm)

    def slice_mm(self, k: int) -> float:
        """Level of slice *k* (mm from the diastolic base toward the apex)."""
        return self.first_slice_mm + k * (self.thickness_mm + self.gap_mm)

    def contraction(self, phase: int) -> float:
        """How far into systole *phase* is (0 at end-diastole, 1 at end-systole)."""
        return _squeeze(phase / self.n_phases, self.heart.t_es)

    def base_mm(self, phase: int) -> float:
        """Level of the LV base at *phase*: it descends toward the apex in systole; slices above it are atrial."""
        return self.heart.base_descent * self.contraction(phase)

    def heart_centre_px(self, k: int) -> tuple[float, float]:
        """(row, column) of the LV axis on slice *k* (its breathing shift included)."""
        return (self.rows / 2 + (self.centre_mm[1] + self.shifts_mm[k, 1]) / self.pixel_mm,
                self.rows / 2 + (self.centre_mm[0] + self.shifts_mm[k, 0]) / self.pixel_mm)


def draw_b(seed: int) -> CineBParams:
    """The random draws of the family-B cine of *seed* (deterministic; no image rendered)."""
    rng = np.random.default_rng([seed, 0xCB])
    ef = rng.uniform(0.25, 0.72)
    length, descent = rng.uniform(62, 100), rng.uniform(5, 16)
    h = _Heart(r_endo=float(rng.uniform(18, 32)), wall=float(rng.uniform(7, 13)), length=float(length),
               power=float(rng.uniform(1.6, 2.8)),
               contraction=float(1 - math.sqrt(max((1 - ef) / (1 - descent / length), 0.05))),
               base_descent=float(descent), t_es=float(rng.uniform(0.28, 0.4)), rv_width=float(rng.uniform(10, 24)),
               rv_contraction=float(rng.uniform(0.2, 0.5)), trabecular_mm=float(rng.uniform(1.0, 2.5)), fat_mm=float(rng.uniform(1.0, 3.0)),
               papillary=tuple((float(a), float(rng.uniform(2.0, 5.0)))
                               for a in rng.uniform(-math.pi, math.pi, int(rng.integers(2, 4)))))
    thickness, gap = float(rng.choice([5.0, 6.0, 8.0, 10.0])), float(rng.choice([0.0, 0.5, 2.0, 3.0, 5.0]))
    step = thickness + gap
    first = float(rng.uniform(-10, 8))  # > 0: the stack starts below the base (partial coverage)
    wanted = int(math.ceil((length + h.wall - first) / step))
    n_slices = int(np.clip(wanted - int(rng.integers(0, 2)), 6, 16))  # may stop above the apex
    n_phases = int(rng.integers(14, 31))
    rows = int(rng.choice([192, 208, 224, 256]))
    ps = float(rng.uniform(280.0, 360.0)) / rows  # field of view 280-360 mm
    tones = {"blood": float(rng.uniform(0.75, 1.0)), "myo": float(rng.uniform(0.18, 0.3)),
             "tissue": float(rng.uniform(0.3, 0.45)), "lung": float(rng.uniform(0.02, 0.06)),
             "fat": float(rng.uniform(0.6, 0.85))}
    shifts = rng.normal(0, rng.uniform(1.0, 3.0), (n_slices, 2))  # breath-hold misregistration (mm)
    centre = rng.normal(0, 8, 2)
    angle = float(rng.uniform(-0.5, 0.5))  # RV on the image left, as a short-axis plan puts it
    bias = _bias(rng, (rows, rows), float(rng.uniform(0.25, 0.6)))
    noise, gain = float(rng.uniform(0.02, 0.06)), float(rng.uniform(800, 3000))
    sex = str(rng.choice(["M", "F"]))
    hr = float(rng.uniform(50, 100))
    height = float(rng.uniform(160, 195) if sex == "M" else rng.uniform(150, 180))
    weight = float(rng.uniform(55, 115) if sex == "M" else rng.uniform(45, 95))
    return CineBParams(seed, h, thickness, gap, first, n_slices, n_phases, rows, ps, tones, shifts, centre, angle,
                       bias, noise, gain, sex, hr, height, weight)


def render_b(p: CineBParams, phase: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 with bias field and Rician noise, labels uint8) of slice *k* at *phase*."""
    cols = rows = p.rows
    j, i = np.meshgrid(np.arange(cols), np.arange(rows))
    x0 = (j - cols / 2) * p.pixel_mm - p.centre_mm[0] - p.shifts_mm[k, 0]
    y0 = (i - rows / 2) * p.pixel_mm - p.centre_mm[1] - p.shifts_mm[k, 1]
    c, s = math.cos(p.angle), math.sin(p.angle)
    x, y = c * x0 + s * y0, -s * x0 + c * y0
    img, lab = _slice(p.heart, p.slice_mm(k), p.contraction(phase), x, y, p.tones)
    nrng = np.random.default_rng([p.seed, phase, k, 0xCB])
    sigma = p.noise * p.tones["blood"]
    real = ndimage.gaussian_filter(img, 0.6) * p.bias + nrng.normal(0, sigma, img.shape)
    imag = nrng.normal(0, sigma, img.shape)
    return (np.sqrt(real ** 2 + imag ** 2) * p.gain).astype(np.float32), lab


def make_cine_b(seed: int) -> CineB:
    """The family-B cine of *seed* (deterministic)."""
    p = draw_b(seed)
    images = np.empty((p.n_phases, p.n_slices, p.rows, p.rows), np.float32)
    labels = np.empty((p.n_phases, p.n_slices, p.rows, p.rows), np.uint8)
    for k in range(p.n_slices):
        for ph in range(p.n_phases):
            images[ph, k], labels[ph, k] = render_b(p, ph, k)
    info = {"family": "b", "sex": p.sex, "slices": p.n_slices, "phases": p.n_phases, "thickness_mm": p.thickness_mm,
            "gap_mm": p.gap_mm, "first_slice_mm": round(p.first_slice_mm, 2), "pixel_mm": round(p.pixel_mm, 3),
            "breathing_shift_mm_sd": round(float(p.shifts_mm.std()), 2),
            "bias_range": [round(float(p.bias.min()), 3), round(float(p.bias.max()), 3)],
            "base_covered": p.first_slice_mm <= 0.0,
            "apex_covered": p.slice_mm(p.n_slices - 1) >= p.heart.length}
    return CineB(seed, images, labels, p.geometry, p.heart_rate_bpm, p.height_cm, p.weight_kg, info)


@dataclass(frozen=True)
class _SeriesParams:
    """What :func:`training.cardiac_mri.dicom.write_series` reads of a phantom, for a family-B cine."""

    seed: int
    sex: str
    height_cm: float
    weight_kg: float
    thickness_mm: float
    gap_mm: float
    heart_rate_bpm: float
    n_phases: int
    n_slices: int
    rows: int
    cols: int
    pixel_spacing_mm: float

    @property
    def trigger_times_ms(self) -> list[float]:
        rr = 60000.0 / self.heart_rate_bpm
        return [round(p * rr / self.n_phases, 1) for p in range(self.n_phases)]


def write_cine_b(cine: CineB, out_dir: Path, study_uid: str = "") -> list[Path]:
    """The cine as an MR series through the project's cine writer (UIDs apart from family A's seeds)."""
    from training.cardiac_mri.dicom import write_series

    phases, slices, rows, cols = cine.images.shape
    params = _SeriesParams(900_000 + cine.seed, str(cine.info.get("sex", "O")), cine.height_cm, cine.weight_kg,
                           cine.geometry.slice_thickness_mm, cine.geometry.gap_mm, cine.heart_rate_bpm, phases,
                           slices, rows, cols, cine.geometry.pixel_spacing_mm[0])
    return write_series(params, cine.images, out_dir, study_uid)  # type: ignore[arg-type]
