"""Training patches of the candidate classifier (``models/lung_nodules/classifier.py``), from a dataset alone.

No network runs here, so a classifier can be trained once for any lung network. Per case, on the
network grid (the classifier's ``spacing_mm`` and ``hu_window``):

- positives: every ground-truth nodule centre (``nodulesTr/<case>.json``, or else the label's connected
  components);
- negatives: the strongest peaks of the Hessian dot filter in the lung (``blobs.py``: vessel junctions
  and vessels seen end-on), random tissue voxels in the lung (vessels, airway walls) and random voxels on
  the lung's surface (pleura, mediastinum, diaphragm);
- with a lung network to learn from (:func:`network_candidates`), also that network's own candidates
  (``candidates.py: candidate_centres``, the points the classifier will be asked about): its false
  positives at thick hilar vessel junctions are a kind the samples above rarely hit;
- a sampled point within ``max(mean diameter / 2, 3 mm)`` of a nodule's centre is a positive (what the
  detection metrics count as a hit); one that is not, but lies within half the long axis + 2 mm of it
  (the nodule's edge), is left out: neither label would be right.

Each point keeps cubes larger than the classifier's by ``jitter`` voxels, so training can shift the
centre by up to ``jitter`` (even steps: the coarse channel moves by whole 2-voxel blocks) as it flips,
swaps the in-plane axes and scales the intensity.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from models.errors import ModelError
from models.lung_nodules.blobs import dot_filter
from models.lung_nodules.candidates import candidate_centres
from models.lung_nodules.classifier import cube
from models.lung_nodules.geometry import Grid, reorient_axial
from models.lung_nodules.inference import candidate_settings, input_spec, probability_map
from models.lung_nodules.lungmask import lung_mask
from models.lung_nodules.preprocess import InputSpec, to_network_grid
from models.runtime.base import InferenceRuntime
from training.lung_nodules.metrics import MATCH_MIN_MM
from training.msd import Case, read_case

#: (network input on its grid, that grid, HU on it, lung mask) -> candidate centres ``(n, 3)`` (indices).
Candidates = Callable[[np.ndarray, Grid, np.ndarray, np.ndarray], np.ndarray]

LOGGER = logging.getLogger(__name__)

TISSUE_HU = -500.0
EDGE_MM = 2.0


@dataclass(frozen=True)
class SamplingSettings:
    """``[data]`` of a classifier run: cube size (voxels), centre jitter (voxels, even) and negatives per case."""

    patch: int = 32
    jitter: int = 4
    dot_negatives: int = 60
    tissue_negatives: int = 60
    surface_negatives: int = 30

    def __post_init__(self) -> None:
        if self.patch < 8 or self.patch % 8:
            raise ValueError(f"patch {self.patch}: a multiple of 8 voxels")
        if self.jitter < 0 or self.jitter % 2:
            raise ValueError(f"jitter {self.jitter}: an even number of voxels >= 0")
        if min(self.dot_negatives, self.tissue_negatives, self.surface_negatives) < 0:
            raise ValueError("negatives per case must be >= 0")


@dataclass(frozen=True)
class Truth:
    """A ground-truth nodule: centre (LPS mm), mean diameter and long axis (mm), kind."""

    centre_mm: np.ndarray
    mean_diameter_mm: float
    long_axis_mm: float
    kind: str

    @property
    def hit_mm(self) -> float:
        return max(self.mean_diameter_mm / 2.0, MATCH_MIN_MM)

    @property
    def edge_mm(self) -> float:
        return max(self.long_axis_mm / 2.0 + EDGE_MM, self.hit_mm)


def truth_of(case: Case) -> list[Truth]:
    """Nodules of *case*: its ``nodules`` JSON when present, else the label's connected components (centroid,
    equivalent-sphere diameter, longest extent)."""
    listed = case.meta.get("nodules")
    if listed is not None:
        return [Truth(np.array(n["centre_mm"], dtype=np.float64), float(n["mean_diameter_mm"]),
                      float(n.get("long_axis_mm", n["mean_diameter_mm"])),
                      "juxtapleural" if n.get("juxtapleural") else str(n.get("type", "solid"))) for n in listed]
    if case.label is None:
        return []
    labels, _ = ndimage.label(case.label > 0, structure=np.ones((3, 3, 3), dtype=bool))
    out = []
    for k, obj in enumerate(ndimage.find_objects(labels), start=1):
        if obj is None:
            continue
        idx = np.argwhere(labels[obj] == k) + [s.start for s in obj]
        mm = case.grid.to_mm(idx.astype(np.float64))
        diameter = 2.0 * (3.0 * len(idx) * case.grid.voxel_volume_mm3 / (4.0 * np.pi)) ** (1.0 / 3.0)
        extent = float(np.linalg.norm(mm.max(axis=0) - mm.min(axis=0)))
        out.append(Truth(mm.mean(axis=0), diameter, max(extent, diameter), "labelled"))
    return out


@dataclass(eq=False)
class Patches:
    """Points of one or more cases with their cubes (float16): ``fine`` ``(n, p + 2j, ...)`` at the network
    spacing, ``coarse`` ``(n, p + j, ...)`` at twice it; ``positive``, where each point came from
    (``truth``, ``dot``, ``tissue``, ``surface``, ``candidate``), its case, and for positives the nodule's kind and
    size."""

    fine: np.ndarray
    coarse: np.ndarray
    positive: np.ndarray
    source: list[str]
    case: list[str]
    kind: list[str]
    diameter_mm: np.ndarray

    def __len__(self) -> int:
        return len(self.positive)

    @classmethod
    def concat(cls, parts: Sequence[Patches], settings: SamplingSettings) -> Patches:
        if not parts:
            f, c = settings.patch + 2 * settings.jitter, settings.patch + settings.jitter
            return cls(np.zeros((0, f, f, f), np.float16), np.zeros((0, c, c, c), np.float16), np.zeros(0, bool),
                       [], [], [], np.zeros(0))
        return cls(np.concatenate([p.fine for p in parts]), np.concatenate([p.coarse for p in parts]),
                   np.concatenate([p.positive for p in parts]), [s for p in parts for s in p.source],
                   [s for p in parts for s in p.case], [s for p in parts for s in p.kind],
                   np.concatenate([p.diameter_mm for p in parts]))


def _label(point_mm: np.ndarray, truth: Sequence[Truth]) -> tuple[bool | None, int]:
    """(positive, nodule index) of a point: None (left out) on a nodule's edge; index -1 for a negative."""
    for j, t in enumerate(truth):
        d = float(np.linalg.norm(t.centre_mm - point_mm))
        if d <= t.hit_mm:
            return True, j
        if d <= t.edge_mm:
            return None, j
    return False, -1


def _sample(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return pool if len(pool) <= n else pool[rng.choice(len(pool), n, replace=False)]


def network_candidates(runtime: InferenceRuntime, model: str, version: int, spec: InputSpec) -> Candidates:
    """The candidates of *model* *version* (its own post-processing settings) as a :data:`Candidates` function.

    Raises:
        ModelError: the network sees another grid or window than *spec* (the classifier's).
    """
    network = input_spec(runtime.spec(model))
    if network != spec:
        raise ModelError(f"{model} version {version}: grid {network.spacing_mm} mm and window {network.hu_window} "
                         f"differ from the classifier's {spec.spacing_mm} mm and {spec.hu_window}")
    settings = candidate_settings(runtime, model, version)

    def centres(image: np.ndarray, grid: Grid, net_hu: np.ndarray, lung: np.ndarray) -> np.ndarray:
        prob, _ = probability_map(runtime, image, model, version)
        return candidate_centres(prob, grid, lung, net_hu, settings)

    return centres


def case_patches(case: Case, spec: InputSpec, settings: SamplingSettings, rng: np.random.Generator,
                 candidates: Candidates | None = None) -> Patches:
    """The labelled points of one case and their cubes (see the module docstring); with *candidates*, a lung
    network's candidates among them."""
    hu, grid = reorient_axial(case.image, case.grid)
    image, net_grid = to_network_grid(hu, grid, spec)
    lo, hi = spec.hu_window
    net_hu = image * (hi - lo) + lo
    lung = lung_mask(net_hu, net_grid)
    truth = truth_of(case)
    inverse = np.linalg.inv(net_grid.affine)
    points = [((inverse @ np.r_[t.centre_mm, 1.0])[:3], "truth") for t in truth]
    points += [(np.array(c, dtype=np.float64), "dot")
               for c, _, _ in dot_filter(net_hu, lung, net_grid).peaks(lung, net_grid, settings.dot_negatives)]
    surface = lung & ~ndimage.binary_erosion(lung, iterations=2)
    for source, mask, n in (("tissue", lung & (net_hu > TISSUE_HU), settings.tissue_negatives),
                            ("surface", surface, settings.surface_negatives)):
        points += [(p.astype(np.float64), source) for p in _sample(np.argwhere(mask), n, rng)]
    if candidates is not None:
        points += [(c, "candidate") for c in candidates(image, net_grid, net_hu, lung)]
    return _cut(case.name, image, net_grid, points, truth, settings)


def _cut(name: str, image: np.ndarray, grid: Grid, points: Sequence[tuple[np.ndarray, str]], truth: Sequence[Truth],
         settings: SamplingSettings) -> Patches:
    """Cubes of the labelled *points* (the first ``len(truth)`` are the nodules' centres, in order)."""
    fine, coarse, positive, source, kind, size = [], [], [], [], [], []
    p, j = settings.patch, settings.jitter
    for n, (index, where) in enumerate(points):
        label, k = (True, n) if n < len(truth) else _label(grid.to_mm(index), truth)
        if label is None:
            continue
        centre = tuple(int(v) for v in np.rint(index))
        fine.append(cube(image, centre, p + 2 * j, 1).astype(np.float16))  # type: ignore[arg-type]
        coarse.append(cube(image, centre, p + j, 2).astype(np.float16))  # type: ignore[arg-type]
        positive.append(label)
        source.append(where)
        kind.append(truth[k].kind if label else "")
        size.append(truth[k].mean_diameter_mm if label else 0.0)
    LOGGER.info("classifier patches %s: %d points, %d on nodules", name, len(positive), sum(positive))
    f, c = p + 2 * j, p + j
    return Patches(np.stack(fine) if fine else np.zeros((0, f, f, f), np.float16),
                   np.stack(coarse) if coarse else np.zeros((0, c, c, c), np.float16),
                   np.array(positive, dtype=bool), source, [name] * len(positive), kind, np.array(size))


def dataset_patches(root: Path, names: Sequence[str], spec: InputSpec, settings: SamplingSettings, seed: int,
                    candidates: Candidates | None = None) -> Patches:
    """:func:`case_patches` of the cases *names* of the MSD folder *root*, one generator seeded by *seed*."""
    rng = np.random.default_rng(seed)
    return Patches.concat([case_patches(read_case(root, n), spec, settings, rng, candidates) for n in names],
                          settings)


def batch(patches: Patches, index: Sequence[int], settings: SamplingSettings, rng: np.random.Generator | None
          ) -> np.ndarray:
    """The classifier's input ``(len(index), 2, p, p, p)`` float32 for points *index*: centred without *rng*;
    with it, shifted by up to ``jitter`` voxels (even steps), flipped on each axis, in-plane axes swapped and
    intensity scaled (0.95-1.05) and offset (+-0.02) at random."""
    p, j = settings.patch, settings.jitter
    out = np.empty((len(index), 2, p, p, p), dtype=np.float32)
    for b, i in enumerate(index):
        shift = rng.integers(-(j // 2), j // 2 + 1, 3) * 2 if rng is not None and j else np.zeros(3, dtype=int)
        cubes = shifted(patches, i, shift, settings)
        if rng is not None:
            for axis in (1, 2, 3):
                if rng.random() < 0.5:
                    cubes = np.flip(cubes, axis)
            if rng.random() < 0.5:
                cubes = np.swapaxes(cubes, 2, 3)
            cubes = cubes * rng.uniform(0.95, 1.05) + rng.uniform(-0.02, 0.02)
        out[b] = cubes
    return out


def shifted(patches: Patches, i: int, shift: np.ndarray, settings: SamplingSettings) -> np.ndarray:
    """The classifier's two cubes ``(2, p, p, p)`` of point *i* with its centre moved by *shift* voxels (even,
    at most ``jitter``): what :func:`models.lung_nodules.classifier.candidate_patches` gives at that centre."""
    p, j = settings.patch, settings.jitter
    fine = patches.fine[i][tuple(slice(j + int(s), j + int(s) + p) for s in shift)]
    coarse = patches.coarse[i][tuple(slice(j // 2 + int(s) // 2, j // 2 + int(s) // 2 + p) for s in shift)]
    return np.stack([fine, coarse]).astype(np.float32)
