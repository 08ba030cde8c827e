"""Mammography phantoms: four-view screening exams with known density and lesions, reproducible by seed.

Each exam has a left and a right breast imaged CC and MLO (canonical orientation, see
:mod:`models.mammography.orientation`). A breast has textured fibroglandular tissue covering a
chosen percent of its area (so its BI-RADS density category is known), vessels, optional benign
vascular calcifications and isolated calcifications (confounders), and 0–n lesions: round or
spiculated masses and micro-calcification clusters. A lesion has one 3D position (depth from the
nipple, medio-lateral and cranio-caudal offsets) and is drawn on both views of its breast at the
same distance from the nipple, so CC/MLO linking can be checked.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from models.mammography.density import birads_density
from models.mammography.preprocess import WORKING_SPACING_MM, resample
from models.mammography.segmentation import find_nipple
from training.mammography.breast import (
    BreastShape,
    TissueParams,
    breast_masks,
    dense_tissue,
    sample_shape,
    skin_distance_mm,
    smooth_noise,
    thickness_profile,
)
from training.mammography.lesions import (
    Calcification,
    MassSpec,
    bezier,
    cluster_region,
    render_calcifications,
    render_curve,
    render_mass,
)

VIEWS: tuple[tuple[str, str], ...] = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))
#: Display window (centre, width) of phantom images in their relative units; DICOM phantoms scale it with the
#: pixel values, so the network sees the same normalised input either way.
PHANTOM_WINDOW: tuple[float, float] = (1.3, 2.0)


@dataclass(frozen=True)
class PhantomConfig:
    """What a set of phantoms looks like. ``lesion_rate``: chance that a breast has at least one lesion;
    ``lesion_sides``: the breasts that may have lesions (the others are drawn without theirs, for single-sided
    findings; the default keeps every seed's exam as it was)."""

    spacing_mm: float = 0.25
    lesion_rate: float = 0.3
    max_lesions_per_breast: int = 2
    mass_fraction: float = 0.55
    percent_dense_range: tuple[float, float] = (3.0, 88.0)
    lesion_sides: tuple[str, ...] = ("R", "L")


@dataclass(frozen=True)
class LesionTruth:
    """A lesion as drawn on one view. ``box``: (r0, c0, r1, c1) pixels, canonical orientation, ends exclusive."""

    lesion_id: int
    kind: str  # "mass" | "calcification_cluster"
    subtype: str  # "round" | "spiculated" | "cluster"
    size_mm: float
    depth_mm: float  # distance from the nipple along the nipple axis (columns), same on CC and MLO
    box: tuple[float, float, float, float]
    centre_rc: tuple[float, float]


@dataclass
class PhantomView:
    """One view in canonical orientation with its truth maps (booleans, image shape)."""

    laterality: str
    view: str
    spacing_mm: float
    image: np.ndarray  # float32, relative attenuation (fat = 1.0), air ~ 0
    breast: np.ndarray
    pectoral: np.ndarray
    dense: np.ndarray
    mass: np.ndarray
    calc: np.ndarray
    lesions: tuple[LesionTruth, ...]
    nipple_rc: tuple[float, float]

    @property
    def percent_dense(self) -> float:
        """True percent dense area (0–100) of the breast without the pectoral muscle."""
        region = self.breast & ~self.pectoral
        return 100.0 * float(self.dense.sum()) / max(1, int(region.sum()))


@dataclass
class PhantomExam:
    seed: int
    spacing_mm: float
    views: dict[tuple[str, str], PhantomView]
    breast_percent_dense: dict[str, float] = field(default_factory=dict)

    @property
    def breast_category(self) -> dict[str, str]:
        return {side: birads_density(pd) for side, pd in self.breast_percent_dense.items()}

    @property
    def exam_category(self) -> str:
        return max(self.breast_category.values())

    @property
    def has_lesion(self) -> bool:
        return any(v.lesions for v in self.views.values())


@dataclass(frozen=True)
class _Lesion3D:
    lesion_id: int
    kind: str
    subtype: str
    size_mm: float
    depth_mm: float
    offsets: tuple[float, float]  # fraction of the half-width (CC rows) and half-height (MLO rows)
    shape_seed: int


def _view_geometry(shape: BreastShape, view: str) -> tuple[float, float, float]:
    if view == "CC":
        return shape.depth_cc_mm, shape.half_width_cc_mm, shape.centre_cc_mm
    return shape.depth_mlo_mm, shape.half_height_mlo_mm, shape.centre_mlo_mm


def _lesion_centre(lesion: _Lesion3D, shape: BreastShape, view: str, spacing_mm: float,
                   nipple_rc: tuple[float, float]) -> tuple[float, float]:
    depth, half, centre = _view_geometry(shape, view)
    col_mm = nipple_rc[1] * spacing_mm - lesion.depth_mm
    frac = lesion.offsets[0] if view == "CC" else lesion.offsets[1]
    row_mm = centre + frac * half * np.sqrt(max(0.0, 1.0 - (col_mm / depth) ** 2))
    return row_mm / spacing_mm, col_mm / spacing_mm


def _fits(centre_rc: tuple[float, float], size_mm: float, skin_mm: np.ndarray, pectoral_dist_mm: np.ndarray,
          spacing_mm: float) -> bool:
    r, c = int(round(centre_rc[0])), int(round(centre_rc[1]))
    if not (0 <= r < skin_mm.shape[0] and 0 <= c < skin_mm.shape[1]):
        return False
    need = size_mm / 2.0 + 4.0
    return bool(skin_mm[r, c] >= need and pectoral_dist_mm[r, c] >= need and c * spacing_mm >= need)


@dataclass
class _ViewCanvas:
    """Working state of one view while it is drawn."""

    view: str
    breast: np.ndarray
    pectoral: np.ndarray
    skin_mm: np.ndarray
    pectoral_dist_mm: np.ndarray
    nipple_rc: tuple[float, float]


def _canvas(shape: BreastShape, view: str, spacing_mm: float) -> _ViewCanvas:
    breast, pectoral = breast_masks(shape, view, spacing_mm)
    skin = skin_distance_mm(breast, spacing_mm)
    pec_dist = ndimage.distance_transform_edt(~pectoral) * spacing_mm if pectoral.any() else np.full(
        breast.shape, 1e3, dtype=np.float64)
    return _ViewCanvas(view, breast, pectoral, skin, pec_dist, find_nipple(breast, pectoral))


def _sample_lesions(rng: np.random.Generator, shape: BreastShape, canvases: list[_ViewCanvas],
                    config: PhantomConfig, first_id: int) -> list[_Lesion3D]:
    lesions: list[_Lesion3D] = []
    if rng.random() >= config.lesion_rate:
        return lesions
    n = int(rng.integers(1, config.max_lesions_per_breast + 1))
    max_depth = min(c.nipple_rc[1] for c in canvases) * config.spacing_mm
    for _ in range(n):
        is_mass = rng.random() < config.mass_fraction
        size = rng.uniform(6.0, 28.0) if is_mass else rng.uniform(5.0, 14.0)
        for _attempt in range(60):
            candidate = _Lesion3D(
                lesion_id=first_id + len(lesions), kind="mass" if is_mass else "calcification_cluster",
                subtype=("spiculated" if rng.random() < 0.5 else "round") if is_mass else "cluster",
                size_mm=size, depth_mm=rng.uniform(8.0, max(10.0, max_depth - 10.0)),
                offsets=(rng.uniform(-0.75, 0.75), rng.uniform(-0.75, 0.75)), shape_seed=int(rng.integers(2**31)))
            centres = [_lesion_centre(candidate, shape, c.view, config.spacing_mm, c.nipple_rc) for c in canvases]
            ok = all(_fits(p, size, c.skin_mm, c.pectoral_dist_mm, config.spacing_mm)
                     for p, c in zip(centres, canvases))
            far = all(abs(candidate.depth_mm - o.depth_mm) > (size + o.size_mm) / 2 + 6 for o in lesions)
            if ok and far:
                lesions.append(candidate)
                break
    return lesions


def _mass_spec(lesion: _Lesion3D, centre_rc: tuple[float, float], view_angle: float,
               dense_contrast: float) -> MassSpec:
    rng = np.random.default_rng(lesion.shape_seed)
    spiculated = lesion.subtype == "spiculated"
    n_spicules = int(rng.integers(8, 18)) if spiculated else 0
    return MassSpec(
        centre_rc=centre_rc, diameter_mm=lesion.size_mm, aspect=rng.uniform(0.7, 1.0),
        angle_rad=rng.uniform(0, np.pi) + view_angle, spiculated=spiculated,
        contrast=dense_contrast * rng.uniform(0.8, 1.3),
        lobulation=tuple((k, rng.uniform(0.0, 0.10 if not spiculated else 0.04), rng.uniform(0, 2 * np.pi))
                         for k in (3, 4, 6)),
        spicules=tuple((rng.uniform(0, 2 * np.pi) + view_angle, rng.uniform(0.6, 1.6), rng.uniform(0.2, 0.45))
                       for _ in range(n_spicules)),
        margin_blur_mm=rng.uniform(0.2, 0.5) if spiculated else rng.uniform(0.2, 1.2),
    )


def _cluster_calcs(lesion: _Lesion3D, centre_rc: tuple[float, float], view: str,
                   spacing_mm: float) -> list[Calcification]:
    """Calcifications of a cluster: 3D offsets inside an ellipsoid, projected onto CC or MLO."""
    rng = np.random.default_rng(lesion.shape_seed)
    n = int(rng.integers(6, 16))
    radius = lesion.size_mm / 2.0
    pts = rng.uniform(-1, 1, (n * 4, 3))
    pts = pts[(pts**2).sum(axis=1) <= 1.0][:n] * radius  # (depth, medio-lateral, cranio-caudal) mm
    calcs = []
    for i, (dx, dy, dz) in enumerate(pts):
        drow = dy if view == "CC" else (dy + dz) / np.sqrt(2.0)
        crng = np.random.default_rng(lesion.shape_seed + 7919 * (i + 1))
        calcs.append(Calcification(
            centre_rc=(centre_rc[0] + drow / spacing_mm, centre_rc[1] - dx / spacing_mm),
            semi_axes_mm=(crng.uniform(0.12, 0.35), crng.uniform(0.1, 0.25)),
            angle_rad=crng.uniform(0, np.pi), contrast=crng.uniform(0.35, 0.9)))
    return calcs


def _vessels(rng: np.random.Generator, canvas: _ViewCanvas, spacing_mm: float, calcified: bool) -> tuple[
        np.ndarray, list[Calcification], np.ndarray]:
    """(vessel layer, isolated benign calcifications, vascular calcification layer) of one view."""
    layer = np.zeros(canvas.breast.shape, dtype=np.float32)
    vascular = np.zeros(canvas.breast.shape, dtype=np.float32)
    nr, nc = canvas.nipple_rc
    rows = np.nonzero(canvas.breast[:, 2])[0]
    for k in range(int(rng.integers(2, 6))):
        p0 = np.array([rng.uniform(rows.min(), rows.max()), rng.uniform(2, 15) / spacing_mm])
        p2 = np.array([nr + rng.uniform(-0.4, 0.4) * (rows.max() - rows.min()) / 2, nc * rng.uniform(0.5, 0.85)])
        p1 = (p0 + p2) / 2 + rng.normal(0, 12.0 / spacing_mm, 2)
        pts, normals = bezier(p0, p1, p2, step_px=0.5)
        half_w = rng.uniform(0.6, 1.3) / spacing_mm
        render_curve(layer, pts, half_w, rng.uniform(0.04, 0.09))
        if calcified and k == 0:
            _vascular_calcification(rng, vascular, pts, normals, half_w, spacing_mm)
    isolated = []
    inside = np.argwhere(canvas.breast & (canvas.skin_mm > 6) & (canvas.pectoral_dist_mm > 6))
    for _ in range(int(rng.integers(0, 4))):
        r, c = inside[rng.integers(len(inside))]
        isolated.append(Calcification((float(r), float(c)), (rng.uniform(0.12, 0.3), rng.uniform(0.1, 0.25)),
                                      rng.uniform(0, np.pi), rng.uniform(0.3, 0.9)))
    return layer, isolated, vascular


def _vascular_calcification(rng: np.random.Generator, out: np.ndarray, pts: np.ndarray, normals: np.ndarray,
                            half_w: float, spacing_mm: float) -> None:
    """Tram-track calcification: dashed bright lines on both walls of a vessel."""
    step_mm = np.linalg.norm(np.diff(pts, axis=0), axis=1).mean() * spacing_mm
    keep = np.zeros(len(pts), dtype=bool)
    i = int(rng.integers(0, max(1, len(pts) // 3)))
    while i < len(pts):
        run = int(rng.uniform(2.0, 7.0) / step_mm)
        keep[i:i + run] = True
        i += run + int(rng.uniform(0.5, 3.0) / step_mm)
    width = rng.uniform(0.15, 0.25) / spacing_mm
    contrast = rng.uniform(0.3, 0.7)
    for side in (-1.0, 1.0):
        render_curve(out, pts[keep] + side * half_w * normals[keep], width, contrast)


def _tissue(rng: np.random.Generator, percent_dense: float) -> TissueParams:
    dense_contrast = rng.uniform(0.25, 0.45)
    return TissueParams(percent_dense=percent_dense, dense_contrast=dense_contrast,
                        pectoral_contrast=dense_contrast * rng.uniform(1.1, 1.5),
                        retromammary_mm=rng.uniform(3.0, 6.0), subcutaneous_mm=rng.uniform(2.5, 5.0))


def _render_view(rng: np.random.Generator, canvas: _ViewCanvas, tissue: TissueParams, shape: BreastShape,
                 lesions: list[_Lesion3D], laterality: str, config: PhantomConfig) -> PhantomView:
    sp = config.spacing_mm
    size = canvas.breast.shape
    t = thickness_profile(canvas.skin_mm, shape.falloff_mm)
    dense = dense_tissue(rng, canvas.breast, canvas.pectoral, canvas.skin_mm, tissue, sp)
    dense_soft = ndimage.gaussian_filter(dense.astype(np.float32), 0.35 / sp)
    texture = smooth_noise(rng, size, sp, 0.6)
    image = t * (1.0 + 0.03 * texture + tissue.dense_contrast * dense_soft * (1.0 + 0.12 * texture))
    if canvas.pectoral.any():
        pec_soft = ndimage.gaussian_filter(canvas.pectoral.astype(np.float32), 0.3 / sp)
        gradient = 1.0 - 0.25 * np.clip(canvas.pectoral_dist_mm / 30.0, 0, 1)
        image += t * pec_soft * tissue.pectoral_contrast * gradient * (1.0 - tissue.dense_contrast * dense_soft)
    vessel_layer, isolated, vascular = _vessels(rng, canvas, sp, calcified=rng.random() < 0.35)
    image += t * vessel_layer + vascular
    mass_mask = np.zeros(size, dtype=bool)
    calc_mask = np.zeros(size, dtype=bool)
    truths = []
    view_angle = rng.uniform(-0.35, 0.35)
    for lesion in lesions:
        centre = _lesion_centre(lesion, shape, canvas.view, sp, canvas.nipple_rc)
        if lesion.kind == "mass":
            core = render_mass(image, t, _mass_spec(lesion, centre, view_angle, tissue.dense_contrast), sp)
            mass_mask |= core
            rows, cols = np.nonzero(core)
            box = (float(rows.min()), float(cols.min()), float(rows.max() + 1), float(cols.max() + 1))
        else:
            calcs = _cluster_calcs(lesion, centre, canvas.view, sp)
            render_calcifications(image, calcs, sp)
            calc_mask |= cluster_region(size, calcs, sp)
            pts = np.array([c.centre_rc for c in calcs])
            pad = 1.0 / sp
            box = (pts[:, 0].min() - pad, pts[:, 1].min() - pad, pts[:, 0].max() + pad + 1, pts[:, 1].max() + pad + 1)
        truths.append(LesionTruth(lesion.lesion_id, lesion.kind, lesion.subtype, lesion.size_mm, lesion.depth_mm,
                                  box, centre))
    render_calcifications(image, isolated, sp)
    image = np.where(canvas.breast, image, 0.02)
    noise_sd = rng.uniform(0.008, 0.018) * 0.25 / sp  # per-pixel quantum noise grows as pixels shrink
    image = image + rng.standard_normal(size).astype(np.float32) * noise_sd * np.sqrt(np.maximum(image, 0.05))
    return PhantomView(laterality, canvas.view, sp, image.astype(np.float32), canvas.breast, canvas.pectoral,
                       dense, mass_mask & canvas.breast, calc_mask & canvas.breast, tuple(truths), canvas.nipple_rc)


def make_exam(seed: int, config: PhantomConfig = PhantomConfig()) -> PhantomExam:
    """A four-view exam (R/L × CC/MLO), fully determined by *seed* and *config*."""
    rng = np.random.default_rng(seed)
    patient_pd = rng.uniform(*config.percent_dense_range)
    exam = PhantomExam(seed=seed, spacing_mm=config.spacing_mm, views={})
    next_id = 1
    for laterality in ("R", "L"):
        side_pd = float(np.clip(patient_pd + rng.normal(0, 2.5), 2.0, 90.0))
        shape = sample_shape(rng)
        tissue = _tissue(rng, side_pd)
        canvases = [_canvas(shape, view, config.spacing_mm) for view in ("CC", "MLO")]
        lesions = _sample_lesions(rng, shape, canvases, config, next_id)
        if laterality not in config.lesion_sides:
            lesions = []
        next_id += len(lesions)
        for canvas in canvases:
            exam.views[(laterality, canvas.view)] = _render_view(rng, canvas, tissue, shape, lesions, laterality,
                                                                 config)
        exam.breast_percent_dense[laterality] = float(np.mean(
            [exam.views[(laterality, v)].percent_dense for v in ("CC", "MLO")]))
    return exam


def to_working(view: PhantomView, target_mm: float = WORKING_SPACING_MM) -> PhantomView:
    """*view* resampled to the working spacing exactly as the pipeline resamples a DICOM image
    (:func:`models.mammography.preprocess.resample`); truth masks follow (area fraction >= 0.5),
    lesion boxes, centres and the nipple are scaled. A view already at *target_mm* is returned as is."""
    if abs(view.spacing_mm - target_mm) < 1e-6:
        return view
    image = resample(view.image, view.spacing_mm, target_mm)
    fr, fc = image.shape[0] / view.image.shape[0], image.shape[1] / view.image.shape[1]

    def mask(m: np.ndarray) -> np.ndarray:
        return resample(m.astype(np.float32), view.spacing_mm, target_mm) >= 0.5

    def point(rc: tuple[float, float]) -> tuple[float, float]:
        return (rc[0] + 0.5) * fr - 0.5, (rc[1] + 0.5) * fc - 0.5

    lesions = tuple(replace(t, box=(t.box[0] * fr, t.box[1] * fc, t.box[2] * fr, t.box[3] * fc),
                            centre_rc=point(t.centre_rc)) for t in view.lesions)
    return PhantomView(view.laterality, view.view, target_mm, image, mask(view.breast), mask(view.pectoral),
                       mask(view.dense), mask(view.mass), mask(view.calc), lesions, point(view.nipple_rc))
