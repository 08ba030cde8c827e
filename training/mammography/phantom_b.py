"""Mammography phantoms of the second family (family B), built independently of family A.

``make_exam_b(seed)`` returns a :class:`~training.mammography.phantom.PhantomExam` (the truth format:
views in canonical orientation with breast, pectoral, dense, mass and calcification masks, lesion boxes,
per-breast percent dense, so density A-D, masses with boxes and laterality/view are read as for family A).
What differs: a larger detector field at 0.2 mm; breast outlines from a super-ellipse with a compression
thickness (35-80 mm) that sets the attenuation; a bright skin line and a nipple bump; pectoral muscle
variants on MLO (straight, convex or concave edge, small or large); parenchyma from a clustered lumpy
background or a power-law (1/f^beta) field, thresholded to the breast's percent dense; vessels with tram-track
(vascular) calcifications and coarse benign (popcorn, rim) calcifications as confounders; masses with
spiculated or obscured (ill-defined, in dense tissue) margins; microcalcification clusters. A vendor-like
display: each exam has its own pixel gain and offset (the window a vendor's VOI LUT gives), stored in
``PhantomExamB.window`` as the window that shows the image as :data:`PHANTOM_WINDOW` shows family A's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
from scipy import ndimage

from training.mammography.phantom import PHANTOM_WINDOW, LesionTruth, PhantomExam, PhantomView

FIELD_MM = (230.0, 160.0)
SPACING_MM = 0.2


@dataclass
class PhantomExamB(PhantomExam):
    """A family-B exam: the truth format plus its display (window centre/width in its pixel units,
    a vendor's own scale) and how its parenchyma was drawn."""

    window: tuple[float, float] = PHANTOM_WINDOW
    texture: str = ""


def _field() -> tuple[int, int]:
    return tuple(int(math.ceil(v / SPACING_MM / 16.0)) * 16 for v in FIELD_MM)  # type: ignore[return-value]


def _outline(rng: np.random.Generator, size: tuple[int, int], view: str, depth: float, half: float,
             centre: float, power: float) -> np.ndarray:
    rr, cc = np.mgrid[0:size[0], 0:size[1]].astype(np.float32) * SPACING_MM
    x, y = cc / depth, (rr - centre) / half
    if view == "MLO":  # the MLO breast runs further up to the axilla
        y = np.where(y < 0, y * 0.8, y)
    return np.abs(x) ** power + np.abs(y) ** 2.0 <= 1.0


def _pectoral(rng: np.random.Generator, breast: np.ndarray, view: str) -> np.ndarray:
    if view != "MLO":
        return np.zeros(breast.shape, dtype=bool)
    variant = str(rng.choice(["straight", "convex", "concave", "small"]))
    top = rng.uniform(25.0, 60.0) * (0.5 if variant == "small" else 1.0) / SPACING_MM
    side = rng.uniform(70.0, 150.0) * (0.5 if variant == "small" else 1.0) / SPACING_MM
    rr, cc = np.mgrid[0:breast.shape[0], 0:breast.shape[1]].astype(np.float32)
    u = cc / top + rr / side  # < 1 inside the straight triangle
    bend = {"straight": 0.0, "convex": 0.12, "concave": -0.12, "small": 0.0}[variant]
    return breast & (u < 1.0 + bend * np.sin(np.pi * np.clip(rr / side, 0, 1)))


def _lumpy(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Clustered lumpy background: clusters of anisotropic Gaussian blobs."""
    out = np.zeros(size, dtype=np.float32)
    small = (size[0] // 4, size[1] // 4)
    rr, cc = np.mgrid[0:small[0], 0:small[1]].astype(np.float32)
    for _ in range(int(rng.integers(60, 120))):
        cr, ccn = rng.uniform(0, small[0]), rng.uniform(0, small[1])
        for _ in range(int(rng.integers(4, 12))):
            r0, c0 = cr + rng.normal(0, 8), ccn + rng.normal(0, 8)
            a, b, th = rng.uniform(1.5, 5), rng.uniform(0.8, 2.5), rng.uniform(0, np.pi)
            u = (rr - r0) * math.cos(th) + (cc - c0) * math.sin(th)
            v = -(rr - r0) * math.sin(th) + (cc - c0) * math.cos(th)
            out[: small[0], : small[1]] += np.exp(-0.5 * ((u / a) ** 2 + (v / b) ** 2))
    return ndimage.zoom(out[: small[0], : small[1]], 4, order=1)[: size[0], : size[1]]


def _power_law(rng: np.random.Generator, size: tuple[int, int], beta: float) -> np.ndarray:
    """Isotropic noise with a power spectrum falling as 1/f^beta."""
    fy = np.fft.fftfreq(size[0])[:, None]
    fx = np.fft.rfftfreq(size[1])[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) * f ** (-beta / 2)
    spectrum[0, 0] = 0
    return np.fft.irfft2(spectrum, s=size).astype(np.float32)


def _dense(field: np.ndarray, region: np.ndarray, skin_mm: np.ndarray, nipple_rc: tuple[float, float],
           percent: float) -> np.ndarray:
    """Glandular mask covering *percent* % of *region*, favoured behind the nipple and away from the skin."""
    rr, cc = np.mgrid[0:field.shape[0], 0:field.shape[1]].astype(np.float32)
    prior = -np.hypot((rr - nipple_rc[0]) / 500.0, (cc - nipple_rc[1] * 0.6) / 500.0) + np.clip(skin_mm / 15, 0, 1)
    score = (field - field[region].mean()) / (field[region].std() + 1e-6) + 0.8 * prior
    allowed = region & (skin_mm > 2.0)
    n = int(round(percent / 100.0 * region.sum()))
    if n <= 0:
        return np.zeros(field.shape, dtype=bool)
    cut = np.sort(score[allowed])[::-1][min(n, int(allowed.sum())) - 1]
    return allowed & (score >= cut)


def _mass(rng: np.random.Generator, shape: tuple[int, int], centre: tuple[float, float], size_mm: float,
          subtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(core mask, soft opacity) of a spiculated or obscured mass."""
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    r_px = size_mm / 2 / SPACING_MM
    dr, dc = rr - centre[0], cc - centre[1]
    theta = np.arctan2(dr, dc)
    wobble = 1 + sum(rng.uniform(0, 0.08) * np.cos(k * theta + rng.uniform(0, 6.3)) for k in (2, 3, 5))
    core = np.hypot(dr / rng.uniform(0.75, 1.0), dc) <= r_px * wobble
    soft = ndimage.gaussian_filter(core.astype(np.float32), (2.5 if subtype == "obscured" else 0.8) / SPACING_MM)
    if subtype == "spiculated":
        for _ in range(int(rng.integers(10, 22))):
            a = rng.uniform(0, 2 * np.pi)
            length = r_px * rng.uniform(1.5, 3.0)
            t = np.linspace(r_px * 0.8, length, int(length))
            pr, pc = centre[0] + t * np.sin(a), centre[1] + t * np.cos(a)
            ok = (pr >= 0) & (pr < shape[0]) & (pc >= 0) & (pc < shape[1])
            line = np.zeros(shape, dtype=np.float32)
            line[pr[ok].astype(int), pc[ok].astype(int)] = 1.0
            soft += ndimage.gaussian_filter(line, 0.35 / SPACING_MM) * 3.0
    return core, np.clip(soft, 0, 1)


def _calcs(image: np.ndarray, points: np.ndarray, radius_px: float, contrast: float) -> None:
    rr, cc = np.ogrid[0:image.shape[0], 0:image.shape[1]]
    for r, c in points:
        r0, r1 = int(max(r - 6 * radius_px, 0)), int(min(r + 6 * radius_px + 1, image.shape[0]))
        c0, c1 = int(max(c - 6 * radius_px, 0)), int(min(c + 6 * radius_px + 1, image.shape[1]))
        d2 = (rr[r0:r1] - r) ** 2 + (cc[:, c0:c1] - c) ** 2
        image[r0:r1, c0:c1] += contrast * np.exp(-0.5 * d2 / radius_px ** 2)


def _lesion_specs(rng: np.random.Generator, depth_mm: float) -> list[tuple[str, str, float, float, float]]:
    """(kind, subtype, size mm, depth from the nipple mm, relative offset) of one breast's lesions."""
    specs = []
    if rng.random() < 0.45:
        for _ in range(int(rng.integers(1, 3))):
            if rng.random() < 0.7:
                specs.append(("mass", str(rng.choice(["spiculated", "obscured"])), float(rng.uniform(8, 25)),
                              float(rng.uniform(15, depth_mm - 20)), float(rng.uniform(-0.5, 0.5))))
            else:
                specs.append(("calcification_cluster", "cluster", float(rng.uniform(5, 12)),
                              float(rng.uniform(15, depth_mm - 15)), float(rng.uniform(-0.5, 0.5))))
    return specs


def _view(rng: np.random.Generator, laterality: str, view: str, depth: float, half: float, power: float,
          thickness_mm: float, percent: float, texture: str, beta: float,
          specs: list[tuple[str, str, float, float, float]], first_id: int) -> PhantomView:
    size = _field()
    centre = FIELD_MM[0] / 2 + rng.uniform(-8, 8)
    breast = _outline(rng, size, view, depth, half, centre, power)
    pectoral = _pectoral(rng, breast, view)
    skin_px = ndimage.distance_transform_edt(np.pad(breast, ((0, 0), (64, 0)), mode="edge"))[:, 64:]
    skin_mm = skin_px * SPACING_MM
    nipple = (centre / SPACING_MM, depth / SPACING_MM - 1)
    field = _lumpy(rng, size) if texture == "lumpy" else _power_law(rng, size, beta)
    dense = _dense(field, breast & ~pectoral, skin_mm, nipple, percent)
    mu = thickness_mm / 50.0
    t = np.where(breast, 0.15 + 0.85 * np.sqrt(np.clip(skin_mm / 12.0, 0, 1)), 0.0).astype(np.float32) * mu
    dense_soft = ndimage.gaussian_filter(dense.astype(np.float32), 0.6 / SPACING_MM)
    tex = (field - field.mean()) / (field.std() + 1e-6)
    contrast = rng.uniform(0.25, 0.4)
    image = t * (1.0 + contrast * dense_soft * (1 + 0.1 * tex) + 0.02 * tex)
    image += t * pectoral * rng.uniform(0.45, 0.7) * (1 - contrast * dense_soft)
    image += 0.06 * ((skin_mm > 0) & (skin_mm < 1.2)) * mu  # skin line
    nip = np.hypot(*(np.mgrid[0:size[0], 0:size[1]] - np.array(nipple)[:, None, None])) < 4 / SPACING_MM
    image += 0.08 * (nip & ~breast) * mu
    breast = breast | nip
    for _ in range(int(rng.integers(2, 5))):  # vessels; the first may carry tram-track calcification
        r0 = rng.uniform(0.2, 0.8) * size[0]
        cols = np.arange(int(5 / SPACING_MM), int(depth * 0.8 / SPACING_MM))
        rows = r0 + np.cumsum(rng.normal(0, 0.4, len(cols)))
        ok = (rows >= 0) & (rows < size[0]) & breast[np.clip(rows.astype(int), 0, size[0] - 1), cols]
        vessel = np.zeros(size, np.float32)
        vessel[rows[ok].astype(int), cols[ok]] = 1
        image += ndimage.gaussian_filter(vessel, 0.6 / SPACING_MM) * 2.0 * 0.05 * mu
        if rng.random() < 0.3:
            keep = ok & (np.sin(cols / rng.uniform(8, 20)) > 0)
            for side in (-1.0, 1.0):
                _calcs(image, np.stack([rows[keep] + side * 1.0 / SPACING_MM, cols[keep]], axis=1)[::3], 0.6, 0.25)
    inside = np.argwhere(breast & (skin_mm > 8) & ~pectoral)
    for _ in range(int(rng.integers(0, 4))):  # benign coarse (popcorn) and rim calcifications
        r, c = inside[rng.integers(len(inside))]
        if rng.random() < 0.5:
            _calcs(image, np.array([[r, c]]) + rng.normal(0, 4, (5, 2)), 1.5 / SPACING_MM / 2, 0.6)
        else:
            a = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            _calcs(image, np.stack([r + 12 * np.sin(a), c + 12 * np.cos(a)], axis=1), 1.2, 0.4)
    mass_mask, calc_mask = np.zeros(size, bool), np.zeros(size, bool)
    truths = []
    for k, (kind, subtype, size_mm, from_nipple, offset) in enumerate(specs):
        col = nipple[1] - from_nipple / SPACING_MM
        row = nipple[0] + offset * half / SPACING_MM * math.sqrt(max(0.0, 1 - (col * SPACING_MM / depth) ** 2))
        if kind == "mass":
            core, soft = _mass(rng, size, (row, col), size_mm, subtype)
            gain = contrast * (rng.uniform(0.5, 0.8) if subtype == "obscured" else rng.uniform(0.9, 1.3))
            image += t * soft * gain
            core &= breast
            if not core.any():
                continue
            mass_mask |= core
            core_rows, core_cols = np.nonzero(core)
            box = (float(core_rows.min()), float(core_cols.min()), float(core_rows.max() + 1), float(core_cols.max() + 1))
        else:
            n = int(rng.integers(6, 16))
            pts = np.array([row, col]) + rng.uniform(-1, 1, (n, 2)) * size_mm / 2 / SPACING_MM
            _calcs(image, pts, rng.uniform(0.6, 1.0), rng.uniform(0.35, 0.8))
            pad = 1.0 / SPACING_MM
            box = (pts[:, 0].min() - pad, pts[:, 1].min() - pad, pts[:, 0].max() + pad + 1, pts[:, 1].max() + pad + 1)
            calc_mask[int(box[0]):int(box[2]), int(box[1]):int(box[3])] = True
        truths.append(LesionTruth(first_id + k, kind, subtype, size_mm, from_nipple, box, (row, col)))
    image = np.where(breast, image, 0.02)
    image = image + rng.standard_normal(size).astype(np.float32) * rng.uniform(0.006, 0.015) * np.sqrt(
        np.maximum(image, 0.05))
    return PhantomView(laterality, view, SPACING_MM, image.astype(np.float32), breast, pectoral, dense,
                       mass_mask & breast, calc_mask & breast, tuple(truths), nipple)


def make_exam_b(seed: int, lesion_sides: tuple[str, ...] = ("R", "L")) -> PhantomExamB:
    """The family-B four-view exam of *seed* (deterministic); lesions only in *lesion_sides*."""
    rng = np.random.default_rng([seed, 0xAB])
    percent = float(rng.choice([rng.uniform(3, 20), rng.uniform(28, 45), rng.uniform(55, 72), rng.uniform(78, 90)]))
    texture = str(rng.choice(["lumpy", "power-law"]))
    beta = float(rng.uniform(2.6, 3.4))
    gain, offset = float(rng.uniform(500, 3000)), float(rng.uniform(0, 400))
    thickness = float(rng.uniform(35, 80))  # compression: attenuation scale; the vendor's window follows it
    centre, width = PHANTOM_WINDOW
    mu = thickness / 50.0
    exam = PhantomExamB(seed=seed, spacing_mm=SPACING_MM, views={},
                        window=(centre * mu * gain + offset, width * mu * gain), texture=texture)
    next_id = 1
    for laterality in ("R", "L"):
        side_pct = float(np.clip(percent + rng.normal(0, 2.0), 2.0, 92.0))
        depth, half = float(rng.uniform(60, 130)), float(rng.uniform(55, 95))
        power = float(rng.uniform(1.6, 2.6))
        specs = _lesion_specs(rng, depth) if laterality in lesion_sides else []
        for view in ("CC", "MLO"):
            v = _view(rng, laterality, view, depth, half, power, thickness, side_pct, texture, beta, specs, next_id)
            v.image = (v.image * gain + offset).astype(np.float32)
            exam.views[(laterality, view)] = v
        next_id += len(specs)
        exam.breast_percent_dense[laterality] = float(np.mean(
            [exam.views[(laterality, v)].percent_dense for v in ("CC", "MLO")]))
    return exam


def write_exam_b(exam: PhantomExamB, out_dir: Path, sigmoid: bool = False) -> list[Path]:
    """The exam as an MG series with family B's display: 14-bit pixels in the exam's own scale and its window
    (a ``SIGMOID`` VOI LUT function when *sigmoid*, as some vendors ship), written through the project's MG
    writer (:func:`training.mammography.dicom.write_exam`) and then re-scaled."""
    from training.mammography.dicom import STORED_SCALE, write_exam

    gain = exam.window[1] / PHANTOM_WINDOW[1]  # relative units x gain: the window back to PHANTOM_WINDOW
    offset = exam.window[0] - PHANTOM_WINDOW[0] * gain
    relative = PhantomExam(exam.seed, exam.spacing_mm, {k: replace(v, image=(v.image - offset) / gain)
                                                        for k, v in exam.views.items()},
                           dict(exam.breast_percent_dense))
    paths = write_exam(relative, out_dir)
    for path in paths:
        ds = pydicom.dcmread(path)
        units = ds.pixel_array.astype(np.float64) / STORED_SCALE * gain + offset
        ds.BitsStored, ds.HighBit = 14, 13
        ds.PixelData = np.clip(np.round(units), 0, 16383).astype(np.uint16).tobytes()
        ds.WindowCenter, ds.WindowWidth = f"{exam.window[0]:.1f}", f"{exam.window[1]:.1f}"
        ds.VOILUTFunction = "SIGMOID" if sigmoid else "LINEAR"
        ds.save_as(path, enforce_file_format=True)
    return paths
