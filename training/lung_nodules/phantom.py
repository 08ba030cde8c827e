"""Chest CT phantoms with lung nodules, reproducible by seed.

``generate_phantom(seed, config)`` returns the volume in HU (int16, array ``[slice, row, column]``
with an LPS affine, see :mod:`models.lung_nodules.geometry`), ground-truth nodule labels (one
integer per nodule), solid-part labels, the lung mask, and a JSON-able list of nodules (centre mm,
long/short axis, mean diameter, volume mm3, type, solid-part size, side, zone, Lung-RADS).

What varies with the seed: patient size (body width, fat), slice thickness (0.6-2.5 mm),
pixel size, noise, vessel and airway trees, and 0-n nodules of every kind (solid, part-solid,
ground-glass, juxtapleural: oval or lentiform, and round ones with ``round_juxtapleural``) from 3 to
30 mm. The same seed and config give the same phantom.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from models.lung_nodules.geometry import Grid
from training.lung_nodules import anatomy
from training.lung_nodules.nodules import Kind, NoduleShape, place, render, sample_shape, truth

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhantomConfig:
    """Ranges the generator samples from. ``z_extent_mm`` None: the whole chest; else a slab of the lungs.

    ``kind_weights``: relative frequency of solid, part-solid, ground-glass and juxtapleural nodules.
    ``round_juxtapleural``: the fraction of juxtapleural nodules drawn round (which keep their size category,
    Lung-RADS v2022); the default 0 draws none and leaves every seed's phantom as it was (oval and lentiform
    juxtapleural nodules only), so the figures quoted on fixed seeds still hold.
    """

    pixel_mm: tuple[float, float] = (0.6, 0.9)
    slice_mm: tuple[float, float] = (0.6, 2.5)
    body_width_mm: tuple[float, float] = (290.0, 390.0)
    noise_hu: tuple[float, float] = (8.0, 25.0)
    nodules: tuple[int, int] = (1, 5)
    diameter_mm: tuple[float, float] = (3.0, 30.0)
    kind_weights: tuple[float, float, float, float] = (0.4, 0.2, 0.2, 0.2)
    z_extent_mm: float | None = None
    max_matrix: int = 512
    round_juxtapleural: float = 0.0

    def __post_init__(self) -> None:
        for name in ("pixel_mm", "slice_mm", "body_width_mm", "noise_hu", "diameter_mm"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"phantom {name} {lo}..{hi}: need 0 < low <= high")
        if not 0 <= self.nodules[0] <= self.nodules[1]:
            raise ValueError(f"phantom nodules {self.nodules}: need 0 <= low <= high")
        if not 0.0 <= self.round_juxtapleural <= 1.0:
            raise ValueError(f"phantom round_juxtapleural {self.round_juxtapleural}: need 0 <= fraction <= 1")

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> PhantomConfig:
        """From a TOML/JSON table; lists become tuples. Unknown keys raise ``TypeError``."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


@dataclass(frozen=True, eq=False)
class Phantom:
    seed: int
    hu: np.ndarray  # int16 [slice, row, column]
    grid: Grid
    labels: np.ndarray  # uint8, 0 background, k nodule k
    solid_labels: np.ndarray  # uint8, solid part of nodule k (solid and part-solid nodules)
    lung: np.ndarray  # bool
    nodules: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.grid.spacing

    @property
    def affine(self) -> np.ndarray:
        return self.grid.affine

    def truth_json(self) -> str:
        return json.dumps({"seed": self.seed, **self.info, "nodules": self.nodules}, indent=2)


def _grid(rng: np.random.Generator, body: anatomy.Body, config: PhantomConfig) -> tuple[Grid, float]:
    pixel = float(rng.uniform(*config.pixel_mm))
    thickness = float(np.round(rng.uniform(*config.slice_mm), 1))
    fov = 2 * body.half_width * 1.12 + 20.0
    n = int(min(config.max_matrix, np.ceil(fov / pixel)))
    pixel = max(pixel, fov / n)
    if config.z_extent_mm is None:
        z0, z1 = body.lung_base_z - body.dome_mm - 15.0, body.lung_apex_z + 15.0
    else:
        height = min(config.z_extent_mm, body.lung_apex_z - body.lung_base_z)
        z0 = float(rng.uniform(body.lung_base_z - 0.1 * height, body.lung_apex_z - 0.9 * height))
        z1 = z0 + height
    nz = max(8, int(np.ceil((z1 - z0) / thickness)))
    origin = (-(n - 1) * pixel / 2.0, -(n - 1) * pixel / 2.0, z0)
    return Grid.axial((nz, n, n), (thickness, pixel, pixel), origin), thickness


def _anatomy(body: anatomy.Body, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    nz, ny, nx = grid.shape
    sz, sy, sx = grid.spacing
    ox, oy, oz = grid.affine[:3, 3]
    x = (ox + sx * np.arange(nx))[None, :]
    y = (oy + sy * np.arange(ny))[:, None]
    hu = np.empty(grid.shape, dtype=np.float32)
    lung = np.empty(grid.shape, dtype=bool)
    for k in range(nz):
        hu[k], lung[k] = anatomy.render_slice(body, x, y, oz + sz * k)
    return hu, lung


def _tubes(hu: np.ndarray, lung: np.ndarray, grid: Grid, body: anatomy.Body, rng: np.random.Generator) -> np.ndarray:
    """Ribs, airways and vessels drawn into *hu*; returns the vessel mask (to keep nodules off big vessels)."""
    for seg in anatomy.rib_segments(body, rng):
        anatomy.render_tube(hu, grid, seg, anatomy.HU_BONE)
    vessels = np.zeros(grid.shape, dtype=bool)
    for side in (-1, 1):
        for seg in anatomy.vessel_tree(body, rng, side):
            anatomy.render_tube(vessels, grid, seg, True, within=lung)  # type: ignore[arg-type]
    points = grid.to_mm(np.argwhere(lung[::3, ::6, ::6]) * np.array([3, 6, 6]))
    if len(points):
        density = float(rng.uniform(1.5, 3.0))  # fragments per cm3 of lung
        count = int(density * lung.sum() * grid.voxel_volume_mm3 / 1000.0 / 10.0)
        for seg in anatomy.vessel_fragments(points, rng, count):
            anatomy.render_tube(vessels, grid, seg, True, within=lung)  # type: ignore[arg-type]
    hu[vessels] = anatomy.HU_BLOOD
    for seg in anatomy.airway_tree(body, rng):
        anatomy.render_tube(hu, grid, seg, anatomy.HU_AIRWAY_WALL, extra_mm=max(0.8, 0.2 * seg.radius_mm))
        anatomy.render_tube(hu, grid, seg, anatomy.HU_AIR)
    return vessels


def _nodules(rng: np.random.Generator, config: PhantomConfig, lung: np.ndarray, grid: Grid,
             vessels: np.ndarray) -> list[NoduleShape]:
    count = int(rng.integers(config.nodules[0], config.nodules[1] + 1))
    weights = np.array(config.kind_weights, dtype=np.float64)
    kinds = list(Kind)
    placed: list[NoduleShape] = []
    for _ in range(count):
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        shape = place(rng, sample_shape(rng, kind, config.diameter_mm, config.round_juxtapleural), lung, grid,
                      placed, vessels)
        if shape is not None:
            placed.append(shape)
    return placed


def _noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_hu: float) -> np.ndarray:
    noise = rng.standard_normal(shape, dtype=np.float32)
    ndimage.gaussian_filter(noise, sigma=(0.0, 0.8, 0.8), output=noise)
    noise *= sigma_hu / max(float(noise.std()), 1e-6)
    return noise


def generate_phantom(seed: int, config: PhantomConfig = PhantomConfig()) -> Phantom:
    """Generate the phantom of *seed* (see the module docstring). Deterministic for (seed, config)."""
    rng = np.random.default_rng(seed)
    body = anatomy.Body.random(rng, config.body_width_mm)
    grid, thickness = _grid(rng, body, config)
    hu, lung = _anatomy(body, grid)
    vessels = _tubes(hu, lung, grid, body, rng)
    lung &= ~vessels
    sz, sy, _ = grid.spacing
    ndimage.gaussian_filter(hu, sigma=(0.35, 0.45 / sy * 0.8, 0.45 / sy * 0.8), output=hu)
    lung_filled = ndimage.binary_fill_holes(lung | vessels)
    shapes = _nodules(rng, config, lung_filled, grid, vessels)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    solid = np.zeros(grid.shape, dtype=np.uint8)
    for k, shape in enumerate(shapes, start=1):
        render(hu, labels, solid, grid, shape, k)
    noise_hu = float(rng.uniform(*config.noise_hu)) * (body.half_width / 170.0) ** 1.5
    hu += _noise(rng, grid.shape, noise_hu)
    lung_z = (body.lung_base_z - body.dome_mm * 0.6, body.lung_apex_z)
    info = {"slice_thickness_mm": thickness, "pixel_mm": round(grid.spacing[1], 4), "noise_hu": round(noise_hu, 1),
            "body_width_mm": round(2 * body.half_width, 1), "shape": list(grid.shape),
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}}
    nodules = [truth(s, k, lung_z) for k, s in enumerate(shapes, start=1)]
    LOGGER.debug("phantom %d: %s, %d nodules", seed, grid.shape, len(nodules))
    return Phantom(seed, np.clip(np.round(hu), -1024, 3071).astype(np.int16), grid, labels, solid,
                   lung_filled | (labels > 0), nodules, info)
