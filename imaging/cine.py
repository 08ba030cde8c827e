"""Cine MR: 2D+t per slice location, frames ordered by Trigger Time.

A cine series holds, at each slice position, a sequence of frames over the
cardiac cycle. :func:`load_cine` groups frames by position along the normal
and orders each group by the first temporal attribute present on all of
them: Trigger Time, Nominal Cardiac Trigger Delay Time (enhanced MR),
Temporal Position Index, Temporal Position Identifier.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imaging.errors import GeometryError, ImagingError
from imaging.geometry import check_orientations, cluster_positions, direction_cosines, plan_stack, plane_affine
from imaging.headers import SliceHeader, SourceFrame, require_geometry
from imaging.pixels import DecodedInstances, fill_slice
from imaging.volume import LoadOptions, Phase, Volume, interpolate_slices, read_slice_headers, reader_threads

LOGGER = logging.getLogger(__name__)

#: Attributes that order the frames of one location, first present wins.
CINE_TIME_KEYWORDS = ("TriggerTime", "NominalCardiacTriggerDelayTime", "TemporalPositionIndex",
                      "TemporalPositionIdentifier")


@dataclass(frozen=True, eq=False)
class CineSlice:
    """Frames (t, r, c) float32 at one location; *times* in ms (or index units, see *time_keyword*)."""

    frames: np.ndarray
    times: tuple[float, ...]
    time_keyword: str
    affine: np.ndarray
    position_mm: float
    headers: tuple[SliceHeader, ...]

    @property
    def sources(self) -> tuple[SourceFrame, ...]:
        return tuple(h.source for h in self.headers)


@dataclass(frozen=True, eq=False)
class Cine:
    """Cine locations sorted along the slice normal."""

    slices: tuple[CineSlice, ...]
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    modality: str

    @property
    def n_phases(self) -> int:
        """Phases present at every location."""
        return min(len(s.times) for s in self.slices)

    def phase_volume(self, index: int, options: LoadOptions = LoadOptions()) -> Volume:
        """The volume of every location's frame *index* (0-based), e.g. end-diastole for a short-axis stack.

        Raises:
            ImagingError: *index* out of range.
            GeometryError: the locations do not form a regular stack (unless ``options.regrid``).
        """
        if not 0 <= index < self.n_phases:
            raise ImagingError(f"cine {self.series_uid}: phase {index} outside 0..{self.n_phases - 1}")
        headers = [s.headers[index] for s in self.slices]
        first = headers[0]
        positions = np.array([require_geometry(h)[0] for h in headers])
        plan = plan_stack(positions, first.orientation or (), first.pixel_spacing or (), first.thickness_mm,
                          what=f"cine {self.series_uid} phase {index}", regrid=options.regrid)
        voxels = np.stack([self.slices[i].frames[index] for i in plan.order]).astype(np.float32, copy=False)
        sources: tuple[SourceFrame | None, ...] = tuple(headers[i].source for i in plan.order)
        if len(plan.grid_mm) != len(plan.distances_mm) or not np.allclose(plan.grid_mm, plan.distances_mm):
            voxels, sources = interpolate_slices(voxels, plan.distances_mm, plan.grid_mm, sources)
        times = [self.slices[i].times[index] for i in plan.order]
        keyword = self.slices[0].time_keyword
        return Volume(voxels=voxels, affine=plan.affine, sources=sources,
                      study_uid=self.study_uid, series_uid=self.series_uid,
                      frame_of_reference_uid=self.frame_of_reference_uid, modality=self.modality,
                      issues=plan.issues, phase=Phase(keyword, float(np.mean(times)), index))


def _time_keyword(group: Sequence[SliceHeader], what: str) -> str:
    for keyword in CINE_TIME_KEYWORDS:
        values = [h.temporal.get(keyword) for h in group]
        if all(v is not None for v in values) and len(set(values)) == len(values):
            return keyword
    raise GeometryError(f"{what}: frames at one location have no distinct {' / '.join(CINE_TIME_KEYWORDS)}")


def load_cine(paths: Sequence[Path], options: LoadOptions = LoadOptions()) -> Cine:
    """Read a cine series (single-frame files or enhanced multi-frame) into per-location frame sequences.

    Raises:
        ReadError: a file is not a greyscale cross-sectional image.
        GeometryError: mixed orientations, or frames at a location without a distinct time.
    """
    if not paths:
        raise ImagingError("load_cine: no files given")
    headers = read_slice_headers(paths, options.workers)
    what = f"cine {headers[0].source.header.get('SeriesInstanceUID', '?')}"
    geometry = [require_geometry(h) for h in headers]
    check_orientations([g[1] for g in geometry], what)
    normal = direction_cosines(geometry[0][1])[2]
    distances = np.array([g[0] for g in geometry]) @ normal
    decoded = DecodedInstances()
    slices = []
    for cluster in cluster_positions(distances):
        group = [headers[i] for i in cluster]
        keyword = _time_keyword(group, what)
        group.sort(key=lambda h: h.temporal[keyword])
        frames = np.empty((len(group), group[0].layout.rows, group[0].layout.columns), dtype=np.float32)
        with ThreadPoolExecutor(max_workers=reader_threads(options.workers)) as pool:
            list(pool.map(lambda t: fill_slice(group[t], frames[t], decoded), range(len(group))))
        h0 = group[0]
        step = normal * float(h0.thickness_mm or 1.0)
        slices.append(CineSlice(frames=frames, times=tuple(h.temporal[keyword] for h in group), time_keyword=keyword,
                                affine=plane_affine(h0.orientation or (), h0.pixel_spacing or (), h0.position or (),
                                                    step),
                                position_mm=float(distances[cluster[0]]), headers=tuple(group)))
    ds = headers[0].source.header
    LOGGER.info("%s: %d locations, %d phases", what, len(slices), min(len(s.times) for s in slices))
    return Cine(slices=tuple(slices), study_uid=str(ds.get("StudyInstanceUID", "")),
                series_uid=str(ds.get("SeriesInstanceUID", "")),
                frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")), modality=str(ds.get("Modality", "")))
