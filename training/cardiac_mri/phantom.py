"""Short-axis cine MR phantoms (bSSFP-like) with truth masks: LV blood pool, LV myocardium, RV blood pool.

Geometry along the LV long axis: ``s`` (mm) from the end-diastolic mitral plane toward the apex.
Slices are fixed in space; over the cycle the LV cavity narrows (radial contraction), the base
descends toward the apex (long-axis shortening: basal slices become atrial at end-systole and are
then background), and the wall thickens (myocardial area per level is conserved). Papillary
muscles sit in the cavity and are labelled blood pool (the documented convention). The RV is a
crescent around the septum with a thin free wall (background). Through-plane, a slice shows and
is labelled by its centre plane; in-plane edges carry partial volume.

Everything is drawn from ``seed``; :func:`truth_function` gives the true volumes by the same
method of discs as the pipeline, on the truth masks.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from models.cardiac_mri.function import CardiacFunction, DiscGeometry, LabelMasks, bsa_mosteller_m2, cardiac_function

BACKGROUND, LV_POOL, LV_MYO, RV_POOL = 0, 1, 2, 3


@dataclass(frozen=True)
class CineParams:
    """Everything random about one phantom (lengths in mm, angles in radians)."""

    seed: int
    rows: int
    cols: int
    pixel_spacing_mm: float
    thickness_mm: float
    gap_mm: float
    n_slices: int
    n_phases: int
    first_slice_s: float
    heart_rate_bpm: float
    centre: tuple[float, float]
    rotation: float
    r_endo: float
    wall: float
    length: float
    contraction: float
    base_descent: float
    t_es: float
    rv_width: float
    rv_contraction: float
    rv_length: float
    papillary_r: float
    intensities: tuple[float, float, float, float, float]  # blood, myocardium, fat, lung, tissue
    bias: tuple[float, float, float, float]
    noise: float
    gain: float
    sex: str
    height_cm: float
    weight_kg: float

    @property
    def geometry(self) -> DiscGeometry:
        return DiscGeometry((self.pixel_spacing_mm, self.pixel_spacing_mm), self.thickness_mm, self.gap_mm)

    @property
    def trigger_times_ms(self) -> list[float]:
        rr = 60000.0 / self.heart_rate_bpm
        return [round(p * rr / self.n_phases, 1) for p in range(self.n_phases)]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def make_params(seed: int) -> CineParams:
    """Draw a phantom: heart size, wall thickness, EF 20-75 %, geometry, intensities, noise."""
    rng = np.random.default_rng(seed)
    r_endo, wall = rng.uniform(19, 31), rng.uniform(6, 14)
    length, descent = rng.uniform(68, 95), rng.uniform(4, 15)
    ef = rng.uniform(0.2, 0.75)
    contraction = 1 - math.sqrt(max((1 - ef) / (1 - descent / length), 0.05))
    thickness, gap = float(rng.choice([6.0, 7.0, 8.0])), float(rng.choice([0.0, 1.0, 2.0, 4.0]))
    first = rng.uniform(-12, -2)
    n_slices = int(math.ceil((length + wall + 4 - first) / (thickness + gap)))
    sex = str(rng.choice(["M", "F"]))
    blood = rng.uniform(0.85, 1.0)
    return CineParams(
        seed=seed, rows=int(rng.choice([160, 176, 192])), cols=int(rng.choice([160, 176, 192])),
        pixel_spacing_mm=float(rng.uniform(1.3, 1.9)), thickness_mm=thickness, gap_mm=gap,
        n_slices=min(max(n_slices, 8), 14), n_phases=int(rng.integers(16, 26)), first_slice_s=float(first),
        heart_rate_bpm=float(rng.uniform(55, 95)), centre=(float(rng.normal(0, 10)), float(rng.normal(0, 10))),
        rotation=float(rng.uniform(-0.6, 0.6)), r_endo=float(r_endo), wall=float(wall), length=float(length),
        contraction=float(contraction), base_descent=float(descent), t_es=float(rng.uniform(0.3, 0.42)),
        rv_width=float(rng.uniform(8, 20)), rv_contraction=float(rng.uniform(0.15, 0.45)),
        rv_length=float(rng.uniform(0.6, 0.85)), papillary_r=float(rng.uniform(2.5, 4.5)),
        intensities=(float(blood), float(rng.uniform(0.22, 0.36)), float(rng.uniform(0.7, 0.9)),
                     float(rng.uniform(0.03, 0.08)), float(rng.uniform(0.35, 0.5))),
        bias=tuple(float(b) for b in rng.normal(0, 0.25, 4)),  # type: ignore[arg-type]
        noise=float(rng.uniform(0.02, 0.07)), gain=float(rng.uniform(300, 1500)), sex=sex,
        height_cm=float(rng.uniform(160, 195) if sex == "M" else rng.uniform(150, 180)),
        weight_kg=float(rng.uniform(58, 110) if sex == "M" else rng.uniform(45, 95)),
    )


def contraction_fraction(t: float, t_es: float) -> float:
    """0 at end-diastole (t = 0), 1 at end-systole (t = t_es), smooth filling back to 0 at t = 1."""
    if t <= t_es:
        return 0.5 * (1 - math.cos(math.pi * t / t_es))
    x = (t - t_es) / (1 - t_es)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, x**0.7)))


class _Canvas:
    """Painter's algorithm with in-plane partial volume: coverage = clip(0.5 - d / pixel, 0, 1)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, ps: float, value: float) -> None:
        self.x, self.y, self.ps = x, y, ps
        self.img = np.full(x.shape, value, dtype=np.float32)
        self.lab = np.zeros(x.shape, dtype=np.uint8)

    def ellipse_d(self, cx: float, cy: float, a: float, b: float) -> np.ndarray:
        dx, dy = self.x - cx, self.y - cy
        rho = np.sqrt((dx / a) ** 2 + (dy / b) ** 2)
        grad = np.sqrt((dx / a**2) ** 2 + (dy / b**2) ** 2) / np.maximum(rho, 1e-6)
        return (rho - 1.0) / np.maximum(grad, 1e-6)

    def paint(self, d: np.ndarray, value: float, label: int | None) -> None:
        alpha = np.clip(0.5 - d / self.ps, 0.0, 1.0)
        self.img = self.img * (1 - alpha) + value * alpha
        if label is not None:
            self.lab[d < 0] = label


def _grid(p: CineParams) -> tuple[np.ndarray, np.ndarray]:
    """Heart-frame mm coordinates of the pixel centres (LV centre at 0, RV toward -x)."""
    j, i = np.meshgrid(np.arange(p.cols), np.arange(p.rows))
    x = (j - p.cols / 2 + 0.5) * p.pixel_spacing_mm - p.centre[0]
    y = (i - p.rows / 2 + 0.5) * p.pixel_spacing_mm - p.centre[1]
    c, s = math.cos(p.rotation), math.sin(p.rotation)
    return c * x + s * y, -s * x + c * y


def _background(cv: _Canvas, p: CineParams, s: float) -> None:
    blood, myo, fat, lung, tissue = p.intensities
    cv.paint(cv.ellipse_d(10, 15, 150, 115), fat, None)
    cv.paint(cv.ellipse_d(10, 15, 140, 105), tissue, None)
    cv.paint(cv.ellipse_d(60, -5, 55, 75), lung, None)
    cv.paint(cv.ellipse_d(-70, -10, 45, 70), lung, None)
    if s > 0.45 * p.length:
        cv.paint(cv.ellipse_d(-20, 70, 70, 35), 0.5 * (tissue + myo) + 0.1, None)  # liver / diaphragm


def _atria(cv: _Canvas, p: CineParams) -> None:
    blood, myo, *_ = p.intensities
    for cx, cy, r in ((3.0, 0.0, 0.85 * p.r_endo), (-1.3 * p.r_endo - 4, 5.0, 0.8 * p.r_endo)):
        cv.paint(cv.ellipse_d(cx, cy, r + 2.0, r + 2.0), myo, None)
        cv.paint(cv.ellipse_d(cx, cy, r, r), blood, None)


def render(p: CineParams, phase: int, slice_index: int, with_image: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 with bias and Rician noise, labels uint8) of one slice at one phase."""
    rng = np.random.default_rng((p.seed, phase, slice_index))
    x, y = _grid(p)
    blood, myo, fat, *_ = p.intensities
    cv = _Canvas(x, y, p.pixel_spacing_mm, 0.0)
    s = p.first_slice_s + slice_index * (p.thickness_mm + p.gap_mm)
    f = contraction_fraction(phase / p.n_phases, p.t_es)
    base, apex = p.base_descent * f, p.length
    _background(cv, p, s)
    if s < base:
        _atria(cv, p)
    elif s < apex + p.wall:
        rel = (s - base) / (apex - base)
        r_endo = p.r_endo * (1 - p.contraction * f) * math.sqrt(max(1 - rel**2, 0.0)) if rel < 1 else 0.0
        ed_endo = p.r_endo * math.sqrt(max(1 - min(rel, 1.0) ** 2, 0.0))
        ed_epi = (p.r_endo + p.wall) * math.sqrt(max(1 - ((s - base) / (apex + p.wall - base)) ** 2, 0.0))
        r_epi = math.sqrt(r_endo**2 + max(ed_epi**2 - ed_endo**2, 0.0))
        cv.paint(cv.ellipse_d(0, 0, r_epi + 1.5, r_epi + 1.5), fat, BACKGROUND)
        rel_rv = (s - base) / (p.rv_length * (apex - base))
        if rel_rv < 1:
            taper = math.sqrt(1 - rel_rv**2)
            a = (r_epi * 0.55 + p.rv_width * (1 - p.rv_contraction * f)) * taper + 1.0
            b = r_epi * 1.3 * (1 - 0.3 * p.rv_contraction * f) * max(taper, 0.5)
            cx = -r_epi * 0.45
            cv.paint(cv.ellipse_d(cx, 0, a + 4.0, b + 4.0), fat, None)
            cv.paint(cv.ellipse_d(cx, 0, a + 2.5, b + 2.5), myo, BACKGROUND)
            cv.paint(cv.ellipse_d(cx, 0, a, b), blood, RV_POOL)
        cv.paint(cv.ellipse_d(0, 0, r_epi, r_epi), myo, LV_MYO)
        if r_endo > 0.5:
            cv.paint(cv.ellipse_d(0, 0, r_endo, r_endo), blood, LV_POOL)
            _papillary(cv, p, rel, r_endo)
    if not with_image:
        return np.zeros(cv.lab.shape, np.float32), cv.lab
    return _acquire(cv.img, x, y, p, rng), cv.lab


def _papillary(cv: _Canvas, p: CineParams, rel: float, r_endo: float) -> None:
    """Two papillary muscles, myocardial signal, labelled blood pool (convention)."""
    if not 0.25 <= rel <= 0.85 or r_endo < 2.5 * p.papillary_r:
        return
    myo = p.intensities[1]
    for angle in (math.radians(60), math.radians(-55)):
        dist = r_endo - p.papillary_r - 1.0
        d = cv.ellipse_d(dist * math.cos(angle), dist * math.sin(angle), p.papillary_r, p.papillary_r)
        cv.paint(d, myo, LV_POOL)


def _acquire(img: np.ndarray, x: np.ndarray, y: np.ndarray, p: CineParams, rng: np.random.Generator) -> np.ndarray:
    """Coil-sensitivity bias field, Rician noise and scanner gain."""
    xn, yn = x / 150.0, y / 150.0
    b = p.bias
    field = np.exp(b[0] * xn + b[1] * yn + b[2] * xn * yn + b[3] * (xn**2 + yn**2))
    sigma = p.noise * p.intensities[0]
    real = img * field + rng.normal(0, sigma, img.shape)
    imag = rng.normal(0, sigma, img.shape)
    return (np.sqrt(real**2 + imag**2) * p.gain).astype(np.float32)


def render_all(p: CineParams, with_image: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels), each (phases, slices, rows, columns)."""
    out = [[render(p, ph, k, with_image) for k in range(p.n_slices)] for ph in range(p.n_phases)]
    images = np.stack([np.stack([o[0] for o in row]) for row in out])
    labels = np.stack([np.stack([o[1] for o in row]) for row in out])
    return images, labels


def masks_from_labels(labels: np.ndarray) -> LabelMasks:
    return LabelMasks(labels == LV_POOL, labels == LV_MYO, labels == RV_POOL)


def truth_function(p: CineParams) -> CardiacFunction:
    """True LV/RV function by the method of discs on the truth masks (same code as the pipeline)."""
    _, labels = render_all(p, with_image=False)
    bsa = bsa_mosteller_m2(p.height_cm, p.weight_kg)
    return cardiac_function(masks_from_labels(labels), p.geometry, p.heart_rate_bpm, bsa)
