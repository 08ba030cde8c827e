"""Second family of calcium-score CT phantoms ("family B"), built independently of :mod:`phantom`.

Shares only the truth format (:class:`~training.coronary_ct.phantom.CalciumPhantom`, :class:`Truth`
voxel labels 0-6, :class:`Calcification` records) so that every tool that reads family A reads B.
Everything else differs on purpose: a rounded-rectangle body, a heart made of a ventricular
ellipsoid plus two atria with a more horizontal or more vertical long axis, coronary trees with
their variants (right or left dominance, normal, short or absent left main, a ramus intermedius),
calcium of the aortic valve and root wall, the mitral annulus, the aortic wall and costal cartilage
beside ribs, sternum and spine, a softer or sharper kernel and correlated noise.

Conventions of the truth: a left-dominant heart's posterior descending branch arises from the
circumflex and is labelled LCx; the ramus intermedius is labelled LAD (scored with the LAD
territory here); without a left main (separate ostia) there is no LM lesion.
``make_phantom_b(seed)`` is deterministic per seed. Calcification kinds: LM, LAD, LCx, RCA,
valve, root, mitral, aortic, cartilage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from models.coronary_ct.calcium import Vessel
from training.coronary_ct.phantom import Calcification, CalciumPhantom, Truth

_TRUTH_OF_KIND = {"LM": Truth.LM, "LAD": Truth.LAD, "LCx": Truth.LCX, "RCA": Truth.RCA}
EXTRA_KINDS = ("valve", "root", "mitral", "aortic", "cartilage")
_BLOOD, _MYO, _FAT, _LUNG, _MUSCLE = 38.0, 52.0, -105.0, -870.0, 50.0


@dataclass(frozen=True)
class Variant:
    """The coronary anatomy of one phantom."""

    dominance: str  # "right" or "left"
    left_main_mm: float  # 0 = absent (separate LAD and LCx ostia)
    ramus: bool


def variant_for(seed: int) -> Variant:
    """Variants cycle with the seed so that a handful of seeds covers them all."""
    rng = np.random.default_rng([seed, 7])
    lm = (0.0, 4.0, float(rng.uniform(9, 14)))[seed % 3]
    return Variant("left" if seed % 2 else "right", lm, seed % 4 == 1)


@dataclass(frozen=True)
class _Frame:
    base: np.ndarray  # centre of the mitral/tricuspid plane (mm)
    apex: np.ndarray  # unit vector base -> apex
    ant: np.ndarray  # unit vector, anterior in the heart's frame
    left: np.ndarray
    length: float
    radius: float

    def groove(self, t: float, angle_deg: float, depth: float = 0.0) -> np.ndarray:
        """A point *t* mm along the long axis from the base plane, at *angle_deg* (0 anterior, 90 left),
        *depth* mm inside the epicardium (negative: outside)."""
        frac = min(max(t / self.length, 0.0), 0.98)
        r = self.radius * math.sqrt(max(1.0 - (2 * frac - 1) ** 2, 0.0)) if frac > 0.5 else self.radius
        a = math.radians(angle_deg)
        return self.base + t * self.apex + (r - depth) * (math.cos(a) * self.ant + math.sin(a) * self.left)


def _frame(rng: np.random.Generator) -> _Frame:
    az = math.radians(rng.uniform(25, 70))  # horizontal or vertical hearts
    el = math.radians(rng.uniform(15, 50))
    apex = np.array([math.sin(az) * math.cos(el), -math.cos(az) * math.cos(el), -math.sin(el)])
    up = np.array([0.0, -1.0, 0.0])
    ant = up - apex * float(up @ apex)
    ant /= np.linalg.norm(ant)
    base = np.array([rng.uniform(-10, 12), rng.uniform(0, 20), rng.uniform(-5, 10)])
    return _Frame(base, apex, ant, np.cross(ant, apex), float(rng.uniform(80, 100)), float(rng.uniform(30, 40)))


def _polyline(points: list[np.ndarray], step: float = 0.5) -> np.ndarray:
    pts = np.asarray(points, float)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    t = np.arange(0.0, s[-1], step)
    return np.stack([np.interp(t, s, pts[:, i]) for i in range(3)], axis=1)


def _tree(f: _Frame, root: np.ndarray, root_r: float, v: Variant, rng: np.random.Generator
          ) -> dict[str, list[np.ndarray]]:
    """Centre lines per truth kind (several segments per vessel), in mm."""
    out: dict[str, list[np.ndarray]] = {"LM": [], "LAD": [], "LCx": [], "RCA": []}
    lad_a, n = float(rng.uniform(10, 30)), 30
    bif = f.groove(-6.0, lad_a + 25, -3.0)
    ostium = root + root_r * (bif - root) / np.linalg.norm(bif - root)
    if v.left_main_mm > 0:
        bif = ostium + v.left_main_mm * (bif - ostium) / np.linalg.norm(bif - ostium)
        out["LM"].append(_polyline([ostium, bif]))
        lad0 = lcx0 = bif
    else:  # separate ostia, a few mm apart on the root
        lad0, lcx0 = ostium + 3.0 * f.ant, ostium - 3.0 * f.ant
    ts = np.linspace(0, f.length * 0.95, n)
    out["LAD"].append(_polyline([lad0, *[f.groove(t, lad_a * (1 - t / f.length), -3.0) for t in ts]]))
    lcx_end = 205.0 if v.dominance == "left" else float(rng.uniform(120, 160))
    ring_l = [f.groove(-4.0, a, -3.0) for a in np.linspace(lad_a + 40, lcx_end, n)]
    out["LCx"].append(_polyline([lcx0, *ring_l]))
    if v.ramus:
        out["LAD"].append(_polyline([lad0, *[f.groove(t, lad_a + 40, -3.0) for t in np.linspace(5, 45, 12)]]))
    rca_end = -160.0 if v.dominance == "left" else -200.0
    ring_r = [f.groove(-4.0, a, -3.0) for a in np.linspace(-30, rca_end, n)]
    ostium_r = root + root_r * (ring_r[0] - root) / np.linalg.norm(ring_r[0] - root)
    out["RCA"].append(_polyline([ostium_r, *ring_r]))
    pda = _polyline([f.groove(t, 180.0, -3.0) for t in np.linspace(0, f.length * 0.7, n // 2)])
    out["LCx" if v.dominance == "left" else "RCA"].append(pda)
    return out


def _blob(rng: np.random.Generator, kind: str, centre: np.ndarray, size: tuple[float, float],
          hu: tuple[float, float]) -> Calcification:
    radii = tuple(float(r) for r in rng.uniform(size[0], size[1], 3))
    quat = tuple(float(q) for q in Rotation.random(random_state=int(rng.integers(2**31))).as_quat())
    return Calcification(kind, tuple(float(c) for c in centre), radii, quat,  # type: ignore[arg-type]
                         float(rng.uniform(*hu)))


def _calcium(rng: np.random.Generator, f: _Frame, tree: dict[str, list[np.ndarray]], root: np.ndarray,
             root_r: float, spine: tuple[float, float], sternum_y: float) -> list[Calcification]:
    """Coronary lesions in every vessel present (a proximal LM one beside the root, an LCx one beside the
    mitral annulus) and the confounders near them."""
    out: list[Calcification] = []
    for kind, segments in tree.items():
        for seg in segments:
            for frac in rng.uniform(0.1, 0.9, int(rng.integers(1, 3))):
                if kind == "LM":
                    frac = 0.3
                out.append(_blob(rng, kind, seg[int(frac * (len(seg) - 1))], (0.8, 2.2), (180.0, 900.0)))
    lcx = tree["LCx"][0]
    mitral_angle = float(rng.uniform(100, 140))
    lcx_beside = lcx[int(np.argmin(np.linalg.norm(lcx - f.groove(-4.0, mitral_angle, -3.0), axis=1)))]
    out.append(_blob(rng, "LCx", lcx_beside, (0.9, 1.8), (250.0, 700.0)))
    for a in (mitral_angle - 22.0, mitral_angle + 24.0, float(rng.uniform(60, 200))):
        out.append(_blob(rng, "mitral", f.groove(-2.0, a, 7.0), (1.2, 3.0), (250.0, 900.0)))
    toward_lm = tree["LM"][0][-1] - root if tree["LM"] else f.left
    toward_lm = toward_lm / np.linalg.norm(toward_lm)
    for t in (0.0, 2.1, 4.2):  # valve cusps inside the root, one beside the left ostium
        d = math.cos(t) * toward_lm + math.sin(t) * np.cross(toward_lm, f.apex)
        out.append(_blob(rng, "valve", root + (root_r - 5.0) * d + f.apex * 4.0, (1.2, 2.8), (250.0, 1000.0)))
    out.append(_blob(rng, "root", root + root_r * toward_lm - f.apex * 7.0, (1.0, 2.0), (250.0, 700.0)))
    for _ in range(int(rng.integers(1, 4))):  # ascending and descending aortic wall
        t = rng.uniform(0, 2 * math.pi)
        c = np.array([spine[0] + 30 + 11 * math.cos(t), spine[1] - 28 + 11 * math.sin(t), rng.uniform(-30, 40)])
        out.append(_blob(rng, "aortic", c, (0.9, 2.2), (220.0, 800.0)))
    for side in (-1.0, 1.0):  # costal cartilage beside the sternum
        c = np.array([side * rng.uniform(22, 32), sternum_y + rng.uniform(-2, 4), rng.uniform(-20, 30)])
        out.append(_blob(rng, "cartilage", c, (1.5, 3.5), (200.0, 600.0)))
    return out


def _stamp(hu: np.ndarray, labels: np.ndarray, c: Calcification, label: int, grid: tuple) -> None:
    """Add an ellipsoid with partial volume (4 x 4 x 4 sub-samples per voxel)."""
    ps, inc, origin = grid
    centre = np.asarray(c.centre_mm)
    step = np.array([ps, ps, inc])
    reach = max(c.radii_mm) + inc
    lo = np.maximum(np.floor((centre - reach - origin) / step).astype(int), 0)
    hi = np.minimum(np.ceil((centre + reach - origin) / step).astype(int) + 1, [hu.shape[2], hu.shape[1], hu.shape[0]])
    if (lo >= hi).any():
        return
    sub = (np.arange(4) - 1.5) / 4
    axes = [origin[i] + (np.arange(lo[i], hi[i])[:, None] + sub[None]) * step[i] for i in range(3)]
    x, y, z = np.meshgrid(axes[0].ravel(), axes[1].ravel(), axes[2].ravel(), indexing="ij")
    local = Rotation.from_quat(c.quaternion).inv().apply(np.stack([x, y, z], -1).reshape(-1, 3) - centre)
    inside = (((local / np.asarray(c.radii_mm)) ** 2).sum(1) <= 1.0).reshape(x.shape)
    nx, ny, nz = hi - lo
    frac = inside.reshape(nx, 4, ny, 4, nz, 4).mean(axis=(1, 3, 5)).transpose(2, 1, 0)
    box = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    hu[box] = hu[box] * (1 - frac) + c.hu * frac
    labels[box][frac > 0.02] = label


def _render(shape: tuple[int, int, int], grid: tuple, f: _Frame, root: np.ndarray, root_r: float,
            spine: tuple[float, float], sternum_y: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ps, inc, origin = grid
    n, rows, cols = shape
    x = origin[0] + np.arange(cols) * ps
    y = origin[1] + np.arange(rows) * ps
    z = origin[2] + np.arange(n) * inc
    Z, Y, X = np.meshgrid(z, y, x, indexing="ij")
    hu = np.full(shape, _FAT, np.float32)
    labels = np.zeros(shape, np.uint8)
    body = (np.abs(X / 150.0) ** 4 + np.abs((Y - spine[1] + 100) / 115.0) ** 4) <= 1
    hu[~body] = -1000.0
    for side in (-1, 1):
        lung = ((X - side * 75) / 62) ** 2 + ((Y - spine[1] + 70) / 85) ** 2 <= 1
        hu[lung] = _LUNG
    rel = np.stack([X, Y, Z], -1) - f.base
    t = rel @ f.apex
    rad = np.linalg.norm(rel - t[..., None] * f.apex, axis=-1)
    u = (t - f.length / 2) / (f.length / 2)
    ventricle = (u**2 + (rad / f.radius) ** 2 <= 1) | ((t >= 0) & (t < f.length / 2) & (rad < f.radius))
    fat_shell = (u**2 + (rad / (f.radius + 8)) ** 2 <= 1.3) & (t > -14)
    hu[fat_shell & body] = _FAT
    hu[ventricle] = _MYO
    hu[ventricle & (rad < f.radius - 9)] = _BLOOD
    for centre, r in ((f.base - 22 * f.apex + 18 * f.left + 12 * (-f.ant), 26.0),
                      (f.base - 18 * f.apex - 25 * f.left, 24.0)):
        hu[((np.stack([X, Y, Z], -1) - centre) ** 2).sum(-1) <= r * r] = _BLOOD
    aorta = ((X - root[0]) ** 2 + (Y - root[1]) ** 2 <= root_r**2) & (Z >= root[2] - root_r)
    hu[aorta] = _BLOOD
    hu[(X - spine[0] - 30) ** 2 + (Y - spine[1] + 28) ** 2 <= 121] = _BLOOD  # descending aorta
    _bones(hu, labels, X, Y, Z, spine, sternum_y, rng)
    return hu, labels


def _bones(hu: np.ndarray, labels: np.ndarray, X: np.ndarray, Y: np.ndarray, Z: np.ndarray,
           spine: tuple[float, float], sternum_y: float, rng: np.random.Generator) -> None:
    sx, sy = spine
    vert = ((X - sx) / 20) ** 2 + ((Y - sy) / 17) ** 2 <= 1
    disc = np.mod(Z + rng.uniform(0, 28), 28.0) < 5.0
    hu[vert & ~disc] = 260.0
    hu[vert & ~disc & (((X - sx) / 20) ** 2 + ((Y - sy) / 17) ** 2 > 0.75)] = 700.0
    hu[vert & disc] = 85.0
    arch = ((X - sx) / 26) ** 2 + ((Y - sy - 30) / 12) ** 2 <= 1
    hu[arch] = 480.0
    sternum = (np.abs(X / 16) ** 3 + np.abs((Y - sternum_y) / 6) ** 3 <= 1) & (Z > rng.uniform(-40, -10))
    hu[sternum] = 240.0
    hu[sternum & ((np.abs(X / 16) ** 3 + np.abs((Y - sternum_y) / 6) ** 3) > 0.6)] = 600.0
    phase = rng.uniform(0, 30)
    theta = np.degrees(np.arctan2(np.abs(X), -(Y - sy + 100)))
    ring = np.abs(np.hypot(X / 140, (Y - sy + 100) / 105) - 1.0) * 105 < 5.5
    rib = ring & (np.mod(Z + 1.1 * theta + phase, 30.0) < 10.0) & (theta > 20) & (theta < 160)
    hu[rib] = 620.0
    bone = (vert & ~disc) | arch | sternum | rib
    labels[bone] = int(Truth.BONE)


@dataclass(frozen=True)
class CoronaryAnatomyB:
    """The coronary anatomy of one family-B phantom: its variant and the centre line of each branch (mm), named
    ``LM``, ``LAD``, ``ramus``, ``LCx``, ``RCA`` and ``PDA`` (the posterior descending branch, from the circumflex
    in a left-dominant heart and scored LCx there, else from the right coronary artery)."""

    variant: Variant
    branches: dict[str, np.ndarray]

    def branch_of(self, point_mm: np.ndarray) -> tuple[str, float]:
        """The branch whose centre line passes nearest *point_mm*, and how near (mm)."""
        return min(((name, float(np.linalg.norm(line - point_mm, axis=1).min()))
                    for name, line in self.branches.items()), key=lambda item: item[1])


def _draw(seed: int) -> tuple[np.random.Generator, Variant, _Frame, np.ndarray, float, tuple[float, float], float,
                                dict[str, list[np.ndarray]]]:
    """The random draws of :func:`make_phantom_b` up to its coronary tree, in their order."""
    rng = np.random.default_rng([seed, 2])
    variant = variant_for(seed)
    f = _frame(rng)
    root_r = float(rng.uniform(12, 15))
    root = f.base - 10 * f.apex + 14 * f.ant - 14 * f.left + np.array([0.0, 0.0, 12.0])
    spine = (float(rng.uniform(-6, 6)), float(f.base[1] + rng.uniform(75, 90)))
    sternum_y = float(f.base[1] - rng.uniform(60, 72))
    tree = _tree(f, root, root_r, variant, rng)
    return rng, variant, f, root, root_r, spine, sternum_y, tree


def coronary_anatomy_b(seed: int) -> CoronaryAnatomyB:
    """The branches of :func:`make_phantom_b`'s phantom *seed* (:func:`_tree` keeps the ramus after the LAD and the
    posterior descending branch last in its vessel)."""
    _, variant, _, _, _, _, _, tree = _draw(seed)
    branches = {"LAD": tree["LAD"][0], "LCx": tree["LCx"][0], "RCA": tree["RCA"][0]}
    if tree["LM"]:
        branches["LM"] = tree["LM"][0]
    if variant.ramus:
        branches["ramus"] = tree["LAD"][1]
    branches["PDA"] = tree["LCx" if variant.dominance == "left" else "RCA"][-1]
    return CoronaryAnatomyB(variant, branches)


def make_phantom_b(seed: int, rows: int = 240) -> CalciumPhantom:
    """A reproducible family-B phantom (2.5 or 3 mm slices, 120 kVp-like HU, correlated noise)."""
    rng, variant, f, root, root_r, spine, sternum_y, tree = _draw(seed)
    calcs = _calcium(rng, f, tree, root, root_r, spine, sternum_y)
    ps, inc = float(rng.uniform(0.72, 0.88)), float(rng.choice([2.5, 3.0]))
    zs = np.concatenate([np.concatenate(s) for s in tree.values() if s])[:, 2]
    z0 = float(zs.min() - rng.uniform(6, 12))
    n = int(math.ceil((root[2] + root_r + 15 - z0) / inc))
    centre_xy = f.base[:2] + 0.4 * f.length * f.apex[:2] + np.array([0.0, 20.0])
    origin = np.array([centre_xy[0] - ps * rows / 2, centre_xy[1] - ps * rows / 2, z0])
    grid = (ps, inc, origin)
    hu, labels = _render((n, rows, rows), grid, f, root, root_r, spine, sternum_y, rng)
    lumen = np.zeros(hu.shape, bool)
    for seg in (s for segs in tree.values() for s in segs):
        idx = np.rint((seg - origin) / np.array([ps, ps, inc])).astype(int)
        ok = ((idx >= 0) & (idx < [rows, rows, n])).all(1)
        lumen[idx[ok, 2], idx[ok, 1], idx[ok, 0]] = True
    lumen = ndimage.binary_dilation(lumen, np.ones((1, 5, 5), bool))
    hu[lumen] = _BLOOD
    for c in calcs:
        _stamp(hu, labels, c, int(_TRUTH_OF_KIND.get(c.kind, Truth.EXTRA_CORONARY)), grid)
    hu = ndimage.gaussian_filter(hu, sigma=(0.0, *(2 * [float(rng.uniform(0.3, 0.8))])))
    noise_hu = float(rng.uniform(10, 20))
    noise = ndimage.gaussian_filter(rng.normal(0, 1, hu.shape), (0.0, 0.9, 0.9))
    hu += (noise / noise.std() * noise_hu).astype(np.float32)
    hu = np.clip(np.round(hu), -1024, 3071).astype(np.float32)
    return CalciumPhantom(seed, hu, labels, ps, inc, (float(origin[0]), float(origin[1]), float(origin[2])),
                          tuple(calcs), noise_hu)


def kind_of_lesion(phantom: CalciumPhantom, slice_index: int, centroid_rc: tuple[float, float]) -> str:
    """The kind of the calcification nearest a lesion's centroid (within 6 mm), else "other"."""
    ps, inc, o = phantom.pixel_spacing_mm, phantom.increment_mm, phantom.origin_mm
    p = np.array([o[0] + centroid_rc[1] * ps, o[1] + centroid_rc[0] * ps, o[2] + slice_index * inc])
    best, kind = 6.0, "other"
    for c in phantom.calcifications:
        d = float(np.linalg.norm(p - np.asarray(c.centre_mm)))
        if d < best:
            best, kind = d, c.kind
    return kind


VESSELS_OF_KIND = {k: Vessel(k) for k in _TRUTH_OF_KIND}
