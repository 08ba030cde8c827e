"""From the network's probability map to measured nodule candidates.

``find_nodules(prob, prob_grid, hu, grid, lung)``: connected components of the probability
map (on the network grid) become candidates scored by their peak probability, or by the model
version's second stage on their features (``rescore.py``, false-positive reduction; one of them can
be the logit of a candidate classifier, ``classifier.py``, passed in as a function). With
``blob_candidates`` > 0 (and the features measured) the strongest dot-filter blobs that no network
candidate covers (``blobs.py``: small nodules the network misses) are candidates too, outlined from
a pseudo-probability ball of the blob's radius refined by HU like the rest; each is measured
on the native CT grid: outline, centroid (LPS mm), long and short axis on the axial image of
largest extent, Lung-RADS mean diameter, volume, solid component, type, side, zone, and whether
it is juxtapleural. Pure numpy/scipy; the DICOM pipeline only wires it.

Conventions (model card): the outline is the probability 0.5 iso-surface refined by the HU
boundary (half way between the nodule's median HU and the surrounding lung), and, where the model
version sets ``grow_open_mm``, a solid nodule's outline may reach past the network's probability into
its HU body less the vessels thinner than that radius and, on the pleura, less the chest wall
(:func:`~models.lung_nodules.grow.grown_body`); the solid
component is HU >= -300 inside the outline, less the dense parts that continue outside it (vessels
crossing the edge of ground glass; :func:`solid_component`); type: ground-glass when the solid component's mean
diameter is < 1.5 mm, solid when it is >= 80 % of the nodule's, part-solid otherwise.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from models.lung_nodules.axes import ZERO, Axes2D, axes_of
from models.lung_nodules.blobs import DotMap, dot_filter
from models.lung_nodules.geometry import Grid, resample
from models.lung_nodules.grow import grown_body
from models.lung_nodules.lungrads import NoduleType
from models.lung_nodules.measures import mean_diameter_mm
from models.lung_nodules.rescore import Rescorer, candidate_features
from models.lung_nodules.shape import Location, juxtapleural_features, locate

LOGGER = logging.getLogger(__name__)

FULL = np.ones((3, 3, 3), dtype=bool)

#: Candidate centres ``(n, 3)`` (indices of the network grid) -> the candidate classifier's logits ``(n,)``.
Classify = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class CandidateSettings:
    """Post-processing parameters (probabilities in [0, 1], HU, mm)."""

    prob_threshold: float = 0.5
    min_score: float = 0.5
    min_diameter_mm: float = 2.5
    solid_hu: float = -300.0
    solid_ratio: float = 0.8
    min_solid_mm: float = 1.5
    margin_mm: float = 4.0
    refine_hu: bool = True
    refine_min_prob: float = 0.25
    max_candidates: int = 50
    max_volume_ml: float = 100.0  # larger components are not nodules (a 30 mm nodule is 14 ml)
    min_mean_hu: float | None = None  # outlines whose mean HU is lower hold air (airway lumen, bulla): not nodules
    blob_candidates: int = 0  # strongest dot-filter blobs (blobs.py) added as candidates where no network candidate is
    grow_open_mm: float = 0.0  # > 0: a solid outline may grow to the HU body around it that survives an opening
    # (a ball of this radius removes vessels thinner than it) and stays inside the lung: see grow.grown_body
    split_min_ml: float = 1.0  # a component at least this big with several cores >= split_level is split: see
    split_level: float = 0.9  # split_components (a nodule on a fissure or band the network also fires on)
    split_core_voxels: int = 20
    split_reach_mm: float = 2.0  # a split core's candidate: the component within this distance of the core


@dataclass(frozen=True, eq=False)
class Nodule:
    """One measured candidate. Axes on the axial slice ``slice_index`` of the native grid."""

    score: float
    centre_mm: tuple[float, float, float]
    long_axis_mm: float
    short_axis_mm: float
    mean_diameter_mm: float
    volume_mm3: float
    nodule_type: NoduleType
    solid_diameter_mm: float
    mean_hu: float
    location: Location
    slice_index: int
    axes: Axes2D = ZERO
    box: tuple[slice, slice, slice] = (slice(0), slice(0), slice(0))  # native-grid box of ``mask``
    mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), dtype=bool))
    peak_probability: float = 0.0  # the network's peak probability (the score when there is no second stage)
    features: Mapping[str, float] = field(default_factory=dict)  # second-stage features (rescore.py), if measured

    def axis_points_mm(self, grid: Grid) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
        """LPS end points of the long and short axis (for SR polylines and drawings)."""
        row0, col0 = self.box[1].start, self.box[2].start
        sy, sx = grid.spacing[1], grid.spacing[2]
        out = {}
        for name, ends in (("long", self.axes.long_ends), ("short", self.axes.short_ends)):
            pts = [grid.to_mm(np.array([self.slice_index, row0 + r / sy, col0 + c / sx])) for r, c in ends]
            out[name] = (tuple(float(v) for v in pts[0]), tuple(float(v) for v in pts[1]))
        return out


@dataclass(frozen=True)
class _Component:
    label: int
    score: float
    peak: float
    features: Mapping[str, float]
    blob: tuple[tuple[int, int, int], float] | None = None  # a dot-filter blob: (centre index, radius mm)
    split: bool = False  # split off a larger component (split_components): its core is >= split_level


def _blob_field(shape: tuple[int, ...], centre: np.ndarray, radius_mm: float, spacing: tuple[float, ...]
                ) -> np.ndarray:
    """Pseudo-probability of a blob of *radius_mm* at *centre* (index): 1 at the centre, 0.5 at the radius."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing, strict=True))
    return np.clip(1.0 - 0.5 * d2 / radius_mm ** 2, 0.0, 1.0).astype(np.float32)


def _add_blobs(labels: np.ndarray, kept: set[int], grid: Grid, dots: DotMap, lung: np.ndarray, count: int
               ) -> list[tuple[int, tuple[int, int, int], float]]:
    """Paint the *count* strongest dot-filter blobs not touching a *kept* network component into *labels*
    as new components: [(label, centre index, radius mm)]."""
    added = []
    next_label = int(labels.max()) + 1
    spacing = np.array(grid.spacing, dtype=np.float64)
    for centre, _, sigma in dots.peaks(lung, grid, count):
        radius = max(sigma * math.sqrt(3.0), 1.5)
        half = np.ceil(radius / spacing).astype(int) + 1
        lo = np.maximum(np.array(centre) - half, 0)
        hi = np.minimum(np.array(centre) + half + 1, labels.shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        ball = _blob_field(tuple(int(v) for v in hi - lo), np.array(centre) - lo, radius, grid.spacing) >= 0.5
        here = labels[box]
        if np.isin(here[ball], list(kept)).any():
            continue
        here[ball & ~np.isin(here, list(kept))] = next_label
        added.append((next_label, centre, radius))
        next_label += 1
    return added


def _components(prob: np.ndarray, grid: Grid, settings: CandidateSettings, net_hu: np.ndarray | None,
                lung: np.ndarray | None, rescorer: Rescorer | None, classify: Classify | None = None
                ) -> tuple[np.ndarray, list[_Component]]:
    """Labelled components and those scoring >= min_score, best first.

    The ``max_candidates`` components of highest peak probability (not too big) are kept; their score
    is the peak, or the *rescorer*'s on their features (which need *net_hu* and *lung* on *grid*; they
    are measured whenever those are given). The second stage thus reorders the network's candidates,
    the same ones it was fitted on, and never promotes a speck the network hardly saw. With
    ``blob_candidates`` and the features measured, the strongest dot-filter blobs not touching a kept
    component join them as new components (``blob`` feature 1; without a rescorer they score 0: the
    network gave them no score). With *classify* and the features measured, every candidate also gets
    ``classifier_logit``: the classifier's logit at its centre (the component's centroid, a blob's
    centre), all candidates of the scan in one call.
    """
    labels, unsplit = ndimage.label(prob >= settings.prob_threshold, structure=FULL)
    labels = split_components(prob, labels, grid, settings)
    split_off = range(unsplit + 1, int(labels.max()) + 1)  # labels split_components gave (blobs come after)
    objects = ndimage.find_objects(labels)
    peaks = []
    max_voxels = settings.max_volume_ml * 1e3 / grid.voxel_volume_mm3
    for k, obj in enumerate(objects, start=1):
        if obj is None:
            continue
        inside = labels[obj] == k
        if inside.sum() <= max_voxels:
            peaks.append((float(prob[obj][inside].max()), k))
    top = sorted(peaks, key=lambda pk: (-pk[0], pk[1]))[: settings.max_candidates]
    peak_of = {k: peak for peak, k in top}
    chosen: list[tuple[int, tuple[tuple[int, int, int], float] | None]] = [(k, None) for _, k in top]
    measured = net_hu is not None and lung is not None
    dots = None
    if measured and (settings.blob_candidates > 0 or rescorer is None or "dot" in rescorer.features):
        dots = dot_filter(net_hu, lung, grid)  # type: ignore[arg-type]
    if dots is not None and lung is not None and settings.blob_candidates > 0:
        added = _add_blobs(labels, {k for k, _ in chosen}, grid, dots, lung, settings.blob_candidates)
        chosen += [(k, (centre, radius)) for k, centre, radius in added]
        objects = ndimage.find_objects(labels)
    measures = []
    for k, blob in chosen:
        obj = objects[k - 1]
        peak = peak_of[k] if blob is None else float(prob[obj][labels[obj] == k].max())
        features: dict[str, float] = {}
        if measured:
            features = {**candidate_features(prob, net_hu, lung, labels, k, obj, dots),  # type: ignore[arg-type]
                        "blob": float(blob is not None)}
        measures.append((k, blob, peak, features))
    if measured and classify is not None and measures:
        centres = np.array([_centroid(labels, objects[k - 1], k) if blob is None else blob[0]
                            for k, blob, _, _ in measures], dtype=np.float64)
        for (_, _, _, features), logit in zip(measures, classify(centres), strict=True):
            features["classifier_logit"] = float(logit)
    found = []
    for k, blob, peak, features in measures:
        score = rescorer.score(features) if rescorer is not None else (0.0 if blob is not None else peak)
        if score >= settings.min_score:
            found.append(_Component(k, score, peak, features, blob, split=k in split_off))
    return labels, sorted(found, key=lambda c: -c.score)


def split_components(prob: np.ndarray, labels: np.ndarray, grid: Grid, settings: CandidateSettings) -> np.ndarray:
    """*labels* with each component of at least ``split_min_ml`` that holds two or more cores (connected parts
    >= ``split_level`` of at least ``split_core_voxels``) split into one component per core: each core but
    the largest takes the component's voxels within ``split_reach_mm`` of it (nearest core first), the
    largest keeps the label and the rest. The network can fire along a fissure or an atelectasis band at 0.5-0.9 and merge a
    nodule on it (at ~1.0) into a structure many centimetres long, whose centroid lies far from the nodule
    and whose size rules it out; split, the nodule is its own candidate. Components with one core, and small
    ones, are unchanged; so is a nodule's own outline (the cut runs where the probability is lowest between
    cores only approximately: the nearest-core rule)."""
    min_voxels = settings.split_min_ml * 1e3 / grid.voxel_volume_mm3
    out = labels
    next_label = int(labels.max()) + 1
    for k, obj in enumerate(ndimage.find_objects(labels), start=1):
        if obj is None:
            continue
        inside = labels[obj] == k
        if inside.sum() < min_voxels:
            continue
        cores, n = ndimage.label(inside & (prob[obj] >= settings.split_level), structure=FULL)
        if n < 2:
            continue
        sizes = ndimage.sum_labels(inside, cores, np.arange(1, n + 1))
        big = np.flatnonzero(sizes >= settings.split_core_voxels) + 1
        if len(big) < 2:
            continue
        big = big[np.argsort(-sizes[big - 1], kind="stable")]  # the largest core keeps the label and the rest
        seeds = np.where(np.isin(cores, big), cores, 0)
        dist, nearest = ndimage.distance_transform_edt(seeds == 0, sampling=grid.spacing, return_indices=True)
        owner = np.where(dist <= settings.split_reach_mm, seeds[tuple(nearest)], big[0])
        if out is labels:
            out = labels.copy()
        region = out[obj]
        for core in big[1:]:
            region[inside & (owner == core)] = next_label
            next_label += 1
    return out


def candidate_centres(prob: np.ndarray, grid: Grid, lung: np.ndarray, net_hu: np.ndarray,
                      settings: CandidateSettings) -> np.ndarray:
    """The centres ``(n, 3)`` (indices of *grid*) of every candidate the second stage would score: exactly what
    the candidate classifier is given (network components and, with ``blob_candidates``, dot-filter blobs), before
    any is measured or dropped. Used to train the classifier on the network's own candidates."""
    seen: list[np.ndarray] = []

    def record(centres: np.ndarray) -> np.ndarray:
        seen.append(centres)
        return np.zeros(len(centres))

    _components(prob, grid, settings, net_hu, lung, None, record)
    return seen[0] if seen else np.zeros((0, 3))


def _centroid(labels: np.ndarray, obj: tuple[slice, ...], label: int) -> np.ndarray:
    """Centroid (index) of component *label* within its box *obj*."""
    return np.argwhere(labels[obj] == label).mean(axis=0) + [s.start for s in obj]


def _local_prob(prob: np.ndarray, labels: np.ndarray, label: int, obj: tuple[slice, ...], prob_grid: Grid
                ) -> tuple[np.ndarray, Grid]:
    """The component's probabilities (others zeroed) in its box grown by 3 voxels, and that box's grid."""
    sl = _grown(obj, prob.shape)
    local = np.where(labels[sl] == label, prob[sl], 0.0).astype(np.float32)
    return local, prob_grid.crop(tuple(s.start for s in sl), tuple(s.stop for s in sl))  # type: ignore[arg-type]


def _grown(obj: tuple[slice, ...], shape: tuple[int, ...], by: int = 3) -> tuple[slice, ...]:
    return tuple(slice(max(s.start - by, 0), min(s.stop + by, n)) for s, n in zip(obj, shape, strict=True))


def _native_box(obj: tuple[slice, ...], prob_grid: Grid, grid: Grid, margin_mm: float) -> tuple[slice, ...]:
    corners = np.array([[s.start - 0.5 if i else s.stop - 0.5 for i, s in zip(bits, obj, strict=True)]
                        for bits in np.ndindex(2, 2, 2)], dtype=np.float64)
    idx = grid.to_index(prob_grid.to_mm(corners))
    margin = margin_mm / np.array(grid.spacing)
    lo = np.maximum(np.floor(idx.min(0) - margin).astype(int), 0)
    hi = np.minimum(np.ceil(idx.max(0) + margin).astype(int) + 1, grid.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def _hu_outline(hu: np.ndarray, core: np.ndarray) -> np.ndarray:
    """Normalised field (0.5 at the HU boundary) from the nodule's median HU and the lung around it; the
    *core* itself where the two are too close to tell apart."""
    ring = ndimage.binary_dilation(core, structure=FULL, iterations=3) & ~core & (hu < -600)
    if ring.sum() < 10 or core.sum() == 0:
        return core.astype(np.float32)
    inside, background = float(np.median(hu[core])), float(np.median(hu[ring]))
    if inside - background < 60.0:
        return core.astype(np.float32)
    return ((hu - background) / (inside - background)).astype(np.float32)


def _largest_slice(mask: np.ndarray) -> int:
    areas = mask.sum(axis=(1, 2))
    return int(np.argmax(areas))


def _axes_on(field_: np.ndarray, mask: np.ndarray, k: int, pixel: tuple[float, float]) -> Axes2D:
    return axes_of(np.where(ndimage.binary_dilation(mask[k], iterations=2), field_[k], 0.0), pixel)


def _measure(hu: np.ndarray, prob: np.ndarray, lung: np.ndarray | None, crop: Grid, settings: CandidateSettings,
             core_level: float | None = None) -> tuple[np.ndarray, np.ndarray, Axes2D, int, float] | None:
    """(outline mask, continuous field, axes, slice, solid mean diameter) of one candidate crop; its core is
    where *prob* >= *core_level* (``prob_threshold`` when None; ``split_level`` for a split-off candidate,
    whose fringe holds the structure it was split from)."""
    core = prob >= (settings.prob_threshold if core_level is None else core_level)
    labels, n = ndimage.label(core, structure=FULL)
    if n == 0:
        return None
    if n > 1:
        core = labels == int(np.argmax(ndimage.sum_labels(core, labels, np.arange(1, n + 1)))) + 1
    field_ = prob
    allowed = core
    if settings.refine_hu:
        allowed = (prob >= settings.refine_min_prob) & ndimage.binary_dilation(core, structure=FULL, iterations=2)
        outline = _hu_outline(hu, core)
        if lung is not None:
            allowed &= lung | core
            if settings.grow_open_mm > 0 and float(np.median(hu[core])) >= settings.solid_hu:
                allowed |= grown_body(outline >= 0.5, core, lung, crop.spacing, settings.grow_open_mm)
        field_ = np.where(allowed, np.maximum(outline, 0.0), 0.0).astype(np.float32)
    mask = (field_ >= 0.5) & allowed
    if not mask.any():
        return None
    k = _largest_slice(mask)
    pixel = (crop.spacing[1], crop.spacing[2])
    axes = _axes_on(field_, mask, k, pixel)
    solid = solid_component(mask, hu >= settings.solid_hu)
    solid_mean = 0.0
    if solid.any():
        ks = _largest_slice(solid)
        near = ndimage.binary_dilation(solid[ks], iterations=1) & mask[ks]  # the solid part and its edge
        sa = axes_of(np.where(near, (hu[ks] - settings.solid_hu) / 200.0 + 0.5, 0.0), pixel)
        solid_mean = mean_diameter_mm(sa.long_mm, sa.short_mm)
    return mask, field_, axes, k, solid_mean


def solid_component(mask: np.ndarray, dense: np.ndarray, min_share: float = 0.25) -> np.ndarray:
    """The solid component of an outline *mask*: its *dense* voxels (HU >= solid_hu), less passing vessels.

    A dense part that touches dense tissue outside the outline (a vessel crossing the edge of a ground-glass
    nodule) is not the nodule's solid component, unless it holds at least *min_share* of the outline's
    voxels: a solid nodule touching a vessel or the pleura. The solid core of a part-solid nodule lies
    inside its ground glass and is kept.
    """
    solid = mask & dense
    labels, n = ndimage.label(solid, structure=FULL)
    if n == 0:
        return solid
    outside = dense & ~mask
    total = float(mask.sum())
    keep = np.zeros(n + 1, dtype=bool)
    for k, obj in enumerate(ndimage.find_objects(labels), start=1):
        grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in obj)
        part = labels[grown] == k
        leaks = bool((ndimage.binary_dilation(part, structure=FULL) & outside[grown]).any())
        keep[k] = not leaks or part.sum() >= min_share * total
    return keep[labels]


def _type(mean: float, solid_mean: float, settings: CandidateSettings) -> NoduleType:
    if solid_mean < settings.min_solid_mm:
        return NoduleType.GROUND_GLASS
    if solid_mean >= settings.solid_ratio * mean:
        return NoduleType.SOLID
    return NoduleType.PART_SOLID


def find_nodules(prob: np.ndarray, prob_grid: Grid, hu: np.ndarray, grid: Grid, lung: np.ndarray | None = None,
                 settings: CandidateSettings = CandidateSettings(), net_hu: np.ndarray | None = None,
                 rescorer: Rescorer | None = None, *, classify: Classify | None = None) -> list[Nodule]:
    """Candidates of *prob* (on *prob_grid*, e.g. the network grid) measured on *hu* (on *grid*).

    *lung*: optional lung mask on *prob_grid*; candidates whose centroid is outside it are dropped
    and it gives side, zone and the juxtapleural flag. *net_hu*: HU on *prob_grid*; with *lung* it
    gives each candidate its second-stage features, which *rescorer* (if any) turns into the score.
    *classify*: the candidate classifier (centres on *prob_grid* -> logits), for the ``classifier_logit``
    feature. Sorted by score, highest first.

    Raises:
        GeometryError: the grids are not aligned or the arrays do not match their grids.
        ValueError: a *rescorer* without *net_hu* and *lung*, or one using ``classifier_logit`` without *classify*.
    """
    if rescorer is not None and (net_hu is None or lung is None):
        raise ValueError("find_nodules: a rescorer needs net_hu and lung (its features)")
    if rescorer is not None and "classifier_logit" in rescorer.features and classify is None:
        raise ValueError("find_nodules: this rescorer needs the candidate classifier (classify)")
    labels, found = _components(prob, prob_grid, settings, net_hu, lung, rescorer, classify)
    objects = ndimage.find_objects(labels)
    lung_extent = _lung_extent(lung, prob_grid)
    nodules = []
    for component in found:
        label, score = component.label, component.score
        box = _native_box(objects[label - 1], prob_grid, grid, settings.margin_mm)
        crop = grid.crop(tuple(s.start for s in box), tuple(s.stop for s in box))  # type: ignore[arg-type]
        if component.blob is None:
            local, local_grid = _local_prob(prob, labels, label, objects[label - 1], prob_grid)
        else:  # no network outline: the blob's own pseudo-probability over the same grown box
            sl = _grown(objects[label - 1], prob.shape)
            local_grid = prob_grid.crop(tuple(s.start for s in sl), tuple(s.stop for s in sl))  # type: ignore[arg-type]
            local = _blob_field(local_grid.shape, np.array(component.blob[0]) - [s.start for s in sl],
                                component.blob[1], prob_grid.spacing)
        prob_crop = resample(local, local_grid, crop, fill=0.0)
        lung_crop = None if lung is None else _lung_crop(lung, objects[label - 1], prob_grid, crop)
        hu_crop = hu[box].astype(np.float32)
        measured = _measure(hu_crop, prob_crop, lung_crop, crop, settings,
                            settings.split_level if component.split else None)
        if measured is None:
            continue
        mask, _, axes, k, solid_mean = measured
        mean = mean_diameter_mm(round(axes.long_mm, 2), round(min(axes.short_mm, axes.long_mm), 2))
        if mean < settings.min_diameter_mm:
            continue
        centre = crop.to_mm(np.argwhere(mask).mean(axis=0))
        location = locate(centre, mask, lung_crop, hu_crop, lung_extent, crop.spacing)
        if lung is not None and not location.in_lung:
            continue
        mean_hu = float(hu_crop[mask].mean())
        if settings.min_mean_hu is not None and mean_hu < settings.min_mean_hu:
            continue
        ntype = _type(mean, min(solid_mean, mean), settings)
        features = (juxtapleural_features(mask, crop.spacing)
                    if location.juxtapleural and ntype is NoduleType.SOLID else None)
        location = Location(location.side, location.zone, location.juxtapleural,
                            features is not None and features.benign, location.in_lung, features, location.fissural)
        nodules.append(Nodule(
            score=score, centre_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
            long_axis_mm=round(axes.long_mm, 2), short_axis_mm=round(min(axes.short_mm, axes.long_mm), 2),
            mean_diameter_mm=mean, volume_mm3=round(float(mask.sum()) * grid.voxel_volume_mm3, 1),
            nodule_type=ntype, solid_diameter_mm=min(solid_mean, mean) if ntype is not NoduleType.GROUND_GLASS
            else 0.0, mean_hu=round(mean_hu, 1), location=location,
            slice_index=box[0].start + k, axes=axes, box=box, mask=mask,  # type: ignore[arg-type]
            peak_probability=component.peak, features=component.features))
    LOGGER.debug("%d candidate(s) from %d component(s)", len(nodules), len(found))
    return nodules


def _lung_crop(lung: np.ndarray, obj: tuple[slice, ...], prob_grid: Grid, crop: Grid) -> np.ndarray:
    """Lung mask resampled onto the native crop (from a box around the component on the network grid)."""
    grow = 12
    lo = [max(s.start - grow, 0) for s in obj]
    hi = [min(s.stop + grow, n) for s, n in zip(obj, lung.shape, strict=True)]
    sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    sub = prob_grid.crop(tuple(lo), tuple(hi))  # type: ignore[arg-type]
    return resample(lung[sl].astype(np.float32), sub, crop, fill=0.0) >= 0.5


def _lung_extent(lung: np.ndarray | None, grid: Grid) -> tuple[float, float, float] | None:
    """(midline x, lowest z, highest z) of the lungs in LPS mm, or None without a mask."""
    if lung is None or not lung.any():
        return None
    idx = np.argwhere(lung[::2, ::2, ::2]) * 2
    mm = grid.to_mm(idx)
    return (float((mm[:, 0].min() + mm[:, 0].max()) / 2), float(mm[:, 2].min()), float(mm[:, 2].max()))
