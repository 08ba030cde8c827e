"""The studies ``make demo`` loads into its PACS: one synthetic phantom per imaging pipeline, written as a
scanner would send it, from the same generators the training and the end-to-end tests use. Every
phantom depends on its seed only (no real person's data); seeds are outside the training ranges.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread

#: The imaging pipelines the demo routes, in the order of its table.
PIPELINES = ("lung_nodules", "coronary_ct", "cardiac_mri", "mammography")


@dataclass(frozen=True)
class DemoStudy:
    """A phantom study on disk: which pipeline it is meant for, what it shows, its files."""

    pipeline: str
    description: str
    study_uid: str
    files: tuple[Path, ...]


def _study(pipeline: str, description: str, files: list[Path]) -> DemoStudy:
    uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    return DemoStudy(pipeline, description, uid, tuple(files))


def lung_study(out: Path, small: bool) -> DemoStudy:
    """A chest CT (1.25 mm slices) with two solid or part-solid nodules of 8-14 mm; *small*: a 90 mm slab of
    the lungs at 0.9 mm pixels instead of the whole chest."""
    from training.ct_dicom import CtSeriesInfo, write_ct_series
    from training.lung_nodules.phantom import PhantomConfig, generate_phantom

    config = PhantomConfig(pixel_mm=(0.9, 0.9) if small else (0.8, 0.8), slice_mm=(1.25, 1.25), nodules=(2, 2),
                           diameter_mm=(8.0, 14.0), kind_weights=(0.6, 0.4, 0.0, 0.0),
                           z_extent_mm=90.0 if small else None)
    phantom = generate_phantom(40_001, config)
    info = CtSeriesInfo(seed_text="aiws-demo-lung", patient_id="PHANTOM-DEMO-LUNG", patient_name="PHANTOM^LUNG",
                        accession="DEMO0001", study_description="CT CHEST (demo phantom)")
    files = write_ct_series(phantom.hu.astype("float32"), phantom.affine, out, info)
    return _study("lung_nodules", "chest CT, 2 nodules", files)


def coronary_study(out: Path, small: bool) -> DemoStudy:
    """A gated non-contrast calcium-score CT with calcium in several vessels (*small*: 192 x 192 pixels)."""
    from training.coronary_ct.dicom import write_series
    from training.coronary_ct.phantom import make_phantom

    phantom = make_phantom(10_003, rows=192 if small else 256)
    return _study("coronary_ct", "calcium-score CT", write_series(phantom, out))


def cardiac_study(out: Path, small: bool) -> DemoStudy:
    """A short-axis cine MR stack (8-14 slices, 16-25 phases)."""
    from training.cardiac_mri.dicom import write_series
    from training.cardiac_mri.phantom import make_params, render_all

    params = make_params(10_002)
    images, _ = render_all(params)
    return _study("cardiac_mri", "short-axis cine MR", write_series(params, images, out))


def mammography_study(out: Path, small: bool) -> DemoStudy:
    """A four-view screening mammogram ("For Presentation") with lesions (*small*: 0.3 mm pixels, not 0.2)."""
    from training.mammography.dicom import MgStudyOptions, write_exam
    from training.mammography.phantom import PhantomConfig, make_exam

    exam = make_exam(30_007, PhantomConfig(spacing_mm=0.3 if small else 0.2, lesion_rate=1.0))
    files = write_exam(exam, out, MgStudyOptions(patient_id="PHANTOM-DEMO-MG", accession="DEMO0004"))
    return _study("mammography", "four-view screening MG", files)


#: pipeline -> (output folder, small) -> study.
WRITERS: dict[str, Callable[[Path, bool], DemoStudy]] = {
    "lung_nodules": lung_study,
    "coronary_ct": coronary_study,
    "cardiac_mri": cardiac_study,
    "mammography": mammography_study,
}


def write_studies(folder: Path, pipelines: tuple[str, ...] = PIPELINES, small: bool = False) -> list[DemoStudy]:
    """Write one phantom study per pipeline under ``folder/<pipeline>/``.

    Raises:
        KeyError: an unknown pipeline name.
    """
    return [WRITERS[name](folder / name, small) for name in pipelines]
