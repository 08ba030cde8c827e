"""The ``mammography`` pipeline: a screening study in, density + marks + exam score out, as DICOM.

Stages (timed in ``PipelineOutput.timings_s``): ``load`` (headers, view selection, pixels, canonical
flips), ``preprocess`` (resampling to the working spacing), ``network`` (runtime inference),
``analysis`` (segmentation, density, regions, CC/MLO linking, scores) and ``writing`` (SR, GSPS, SC).

Input: the study's Digital Mammography X-Ray "For Presentation" images; per breast the latest CC and
MLO are analysed; other views (ML, XCCL, spot …) are tolerated and listed as skipped; "For
Processing" images are refused with the reason (:class:`models.errors.NoSuitableSeries` when nothing
else is left).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from imaging.mammo import laterality_sources
from imaging.provenance import algorithm_version
from imaging.series import InstanceHeader
from models.errors import ModelError, NoSuitableSeries
from models.mammography.analysis import ExamAnalysis, Predict, ViewAnalysis, analyse_exam, analyse_view
from models.mammography.inference import load_calibration, relative_input, runtime_predictor
from models.mammography.orientation import LabelConflict
from models.mammography.preprocess import resample
from models.mammography.report import context_of, write_results
from models.mammography.views import CanonicalView, is_for_processing, read_view
from models.pipeline import PipelineOutput, PipelineRequest, PriorSpec
from models.runtime import InferenceRuntime

LOGGER = logging.getLogger(__name__)

MODEL = "mammo_detector"
STANDARD_VIEWS = ("CC", "MLO")


@dataclass
class Selection:
    files: dict[tuple[str, str], Path] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def image_laterality(ds: Any) -> str | None:
    """'L' or 'R' from every laterality attribute of the image (:func:`imaging.mammo.laterality_sources`),
    None when none names a breast.

    Raises:
        LabelConflict: the attributes name different breasts (the study is refused: one mislabelled image puts
            the labels of the others in doubt, and a result on the other breast must never be written).
    """
    sources = laterality_sources(ds)
    if len(set(sources.values())) > 1:
        raise LabelConflict(f"image {ds.get('SOPInstanceUID', '?')}: laterality attributes disagree "
                            f"({', '.join(f'{k} {v}' for k, v in sorted(sources.items()))}); study not analysed")
    return next(iter(sources.values()), None)


def _view_conflict(view_position: str, codes: list[str]) -> bool:
    """View Position says CC and the View Code Sequence an oblique view, or the other way round."""
    text = " ".join(c.lower() for c in codes)
    said = {"CC": "cranio-caudal" in text and "exaggerated" not in text, "MLO": "medio-lateral oblique" in text}
    return view_position.upper() in said and any(v and k != view_position.upper() for k, v in said.items())


def _standard_view(view_position: str, codes: list[str]) -> str | None:
    text = " ".join([view_position.upper(), *[c.lower() for c in codes]])
    if view_position.upper() == "CC" or (not view_position and "cranio-caudal" in text and "exaggerated" not in text):
        return "CC"
    if view_position.upper() == "MLO" or (not view_position and "medio-lateral oblique" in text):
        return "MLO"
    return None


@dataclass(frozen=True)
class MammographySettings:
    """``[pipelines.mammography]``: the model version (None = latest)."""

    model_version: int | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> MammographySettings:
        """Raises: ModelError on an unknown key or a model version that is not a positive integer."""
        unknown = set(raw) - {"model_version"}
        if unknown:
            raise ModelError(f"pipelines.mammography: unknown keys {sorted(unknown)}")
        version = raw.get("model_version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
            raise ModelError(f"pipelines.mammography.model_version: {version!r} is not a positive integer")
        return cls(model_version=version)


def _header(path: Path, known: Mapping[Path, InstanceHeader]) -> Any:
    """The header handed in at completion when its file is unchanged, else read now."""
    inst = known.get(path)
    if inst is not None and inst.is_current():
        return inst.dataset
    return dcmread(path, stop_before_pixels=True)


def select_views(series: Mapping[str, tuple[Path, ...]], known: Mapping[Path, InstanceHeader] | None = None) -> Selection:
    """The latest (highest Instance Number) CC and MLO of each breast among the routed files; *known*:
    headers already read (``PipelineRequest.headers``), not read again.

    Raises:
        NoSuitableSeries: no "For Presentation" CC or MLO mammogram (the reason names what was found).
        LabelConflict: an image whose laterality attributes, or View Position and View Code Sequence, disagree.
    """
    chosen: dict[tuple[str, str], tuple[int, Path]] = {}
    selection = Selection()
    for files in series.values():
        for path in files:
            try:
                ds = _header(path, known or {})
            except (InvalidDicomError, OSError) as exc:
                selection.skipped.append(f"{path.name}: unreadable ({exc})")
                continue
            uid = str(ds.get("SOPInstanceUID", path.name))
            if str(ds.get("Modality", "")) != "MG":
                selection.skipped.append(f"{uid}: modality {ds.get('Modality', '?')}, not MG")
                continue
            if is_for_processing(ds):
                selection.skipped.append(f"{uid}: For Processing image (not analysed)")  # unquoted: kept by scrubbing
                continue
            laterality = image_laterality(ds)
            codes = [str(i.get("CodeMeaning", "")) for i in ds.get("ViewCodeSequence", [])]
            if _view_conflict(str(ds.get("ViewPosition", "")), codes):
                raise LabelConflict(f"image {uid}: View Position {ds.get('ViewPosition')} and the View Code Sequence "
                                    f"name different views; study not analysed")
            view = _standard_view(str(ds.get("ViewPosition", "")), codes)
            if laterality is None:
                selection.skipped.append(f"{uid}: no laterality (Image Laterality, Laterality or a left/right breast "
                                         f"code); not analysed as either breast")
                continue
            if view is None:
                selection.skipped.append(f"{uid}: view {laterality or '?'} {ds.get('ViewPosition', '?')} is not a "
                                         f"standard CC/MLO view")
                continue
            number = int(ds.get("InstanceNumber", 0) or 0)
            if (laterality, view) not in chosen or number >= chosen[(laterality, view)][0]:
                if (laterality, view) in chosen:
                    selection.skipped.append(f"{chosen[(laterality, view)][1].name}: repeated {laterality} {view}")
                chosen[(laterality, view)] = (number, path)
            else:
                selection.skipped.append(f"{uid}: repeated {laterality} {view}")
    if not chosen:
        reasons = "; ".join(selection.skipped[:6]) or "no instances"
        raise NoSuitableSeries(f"no Digital Mammography 'For Presentation' CC or MLO image ({reasons})")
    selection.files = {key: path for key, (_, path) in chosen.items()}
    return selection


def load_sources(series: Mapping[str, tuple[Path, ...]], known: Mapping[Path, InstanceHeader] | None = None
                 ) -> tuple[Selection, dict[tuple[str, str], CanonicalView]]:
    """The selected views read and brought to canonical orientation, keyed (laterality, view).

    Raises:
        NoSuitableSeries: as :func:`select_views`.
        LabelConflict: as :func:`select_views`; an orientation that contradicts the laterality or the image
            (:func:`models.mammography.orientation.view_orientation`); an image read as another view than selected.
        ModelError: an unreadable image.
    """
    selection = select_views(series, known)
    sources = {key: read_view(path) for key, path in sorted(selection.files.items())}
    for key, source in sources.items():
        if (source.laterality, source.view) != key:
            raise LabelConflict(f"image {source.mammogram.source.sop_instance_uid}: selected as {key[0]} {key[1]}, "
                                f"read as {source.laterality} {source.view}; study not analysed")
    return selection, sources


@dataclass(frozen=True)
class AnalysedView:
    source: CanonicalView
    working_shape: tuple[int, int]
    analysis: ViewAnalysis


class _Timed:
    """Wraps a predict callable and adds up the seconds spent in it."""

    def __init__(self, predict: Predict) -> None:
        self.predict = predict
        self.seconds = 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.predict(x)
        finally:
            self.seconds += time.perf_counter() - t0


class MammographyPipeline:
    """Density (BI-RADS a–d), lesion marks with scores and an exam score for a screening mammography study."""

    name = "mammography"
    version = "1.0.0"
    settings_model = MammographySettings
    prior_spec: PriorSpec | None = None

    def __init__(self, runtime: InferenceRuntime, settings: MammographySettings = MammographySettings(),
                 model: str = MODEL) -> None:
        self.runtime = runtime
        self.settings = settings
        self.model = model

    def run(self, request: PipelineRequest) -> PipelineOutput:
        """Analyse the study and write SR + one GSPS per analysed image + a summary SC into ``request.out_dir``.

        Raises:
            NoSuitableSeries: no "For Presentation" CC/MLO image.
            LabelConflict: laterality, view or orientation labels that contradict each other or the image.
            ModelError: unreadable images, a model without calibration, writer failures.
            RetryLater: the inference server is down or the model not ready (Triton).
        """
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        selection, sources = load_sources(request.series, request.headers)
        timings["load"] = time.perf_counter() - t0
        model_version = self.runtime.resolve_version(self.model, self.settings.model_version)
        calibration = load_calibration(self.runtime, self.model, model_version)
        predict = _Timed(runtime_predictor(self.runtime, self.model, model_version))
        relative = relative_input(self.runtime, self.model, model_version)
        t1 = time.perf_counter()
        working = {key: resample(v.image, v.spacing_mm) for key, v in sources.items()}
        timings["preprocess"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        analysed = {key: AnalysedView(sources[key], working[key].shape,  # type: ignore[arg-type]
                                      analyse_view(working[key], key[0], key[1], sources[key].window, predict,
                                                   relative))
                    for key in sources}
        exam = analyse_exam({k: a.analysis for k, a in analysed.items()}, calibration)
        timings["network"] = predict.seconds
        timings["analysis"] = time.perf_counter() - t2 - predict.seconds
        t3 = time.perf_counter()
        context = context_of(request, self.name, algorithm_version(self.version, self.model, model_version),
                             f"{self.model} v{model_version} model card")
        files = write_results(request, context, analysed, exam)
        timings["writing"] = time.perf_counter() - t3
        LOGGER.info("study %s: mammography density %s, %d findings, exam score %d (model %s v%d)",
                    request.study_uid, exam.density.category, len(exam.findings), exam.exam_score, self.model,
                    model_version)
        summary = {**summary_of(exam, selection, model_version),
                   "timings_s": {k: round(v, 3) for k, v in timings.items()}}
        return PipelineOutput(files=files, summary=summary, timings_s=timings)


def summary_of(exam: ExamAnalysis, selection: Selection, model_version: int) -> dict[str, object]:
    """The job summary the service stores (JSON-serialisable)."""
    return {
        "model_version": model_version,
        "density": exam.density.category,
        "density_mapping": exam.density.mapping,
        "breasts": {b.laterality: {"percent_dense": round(b.percent_dense, 1), "category": b.category}
                    for b in exam.density.breasts},
        "exam_score": exam.exam_score,
        "findings": [{"id": f.finding_id, "kind": f.kind, "laterality": f.laterality, "score": f.score,
                      "views": sorted(f.regions)} for f in exam.findings],
        "views": sorted(f"{lat}{view}" for lat, view in exam.views),
        "skipped": selection.skipped,
    }
