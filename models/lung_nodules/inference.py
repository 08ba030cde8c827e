"""Nodule detection on a CT volume in HU: preprocess -> runtime (sliding window) -> candidates.

The DICOM pipeline loads the Volume and calls :func:`detect_nodules`; evaluation calls it on
phantoms. Everything the network needs is read from the model repository:
``config.pbtxt`` (tensors, ROI, ``spacing_mm`` and ``hu_window`` parameters) and the version's
``model_card.json`` (post-processing settings, including the operating score threshold, the
optional second stage ``rescore`` that scores candidates by their features, and the optional
candidate ``classifier`` whose logit is one of those features: another model of the repository,
named with its version).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import numpy as np

from imaging.backend import ArrayBackend
from models.errors import ModelError
from models.lung_nodules.candidates import CandidateSettings, Classify, Nodule, find_nodules
from models.lung_nodules.classifier import ClassifierRef, classifier_logits
from models.lung_nodules.geometry import Grid, reorient_axial
from models.lung_nodules.lungmask import lung_mask
from models.lung_nodules.preprocess import InputSpec, to_network_grid
from models.lung_nodules.rescore import Rescorer
from models.runtime.base import InferenceRuntime
from models.runtime.model_config import ModelSpec
from models.runtime.sliding_window import SlidingWindow, sliding_window_inference

LOGGER = logging.getLogger(__name__)

MODEL_NAME = "lung_nodules"
CARD_JSON = "model_card.json"
T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Detection:
    """Nodules (sorted by score) on the axial-ordered *grid*; the probability map and lung mask on *net_grid*."""

    nodules: list[Nodule]
    model: str
    version: int
    grid: Grid
    net_grid: Grid
    probability: np.ndarray
    lung: np.ndarray
    timings_s: dict[str, float] = field(default_factory=dict)
    classifier: ClassifierRef | None = None  # the candidate classifier that scored the candidates, if any


def input_spec(spec: ModelSpec) -> InputSpec:
    """Network spacing and HU window from the ``config.pbtxt`` parameters.

    Raises:
        ModelConfigError: a parameter is missing or not a list of numbers.
    """
    spacing = spec.float_list_parameter("spacing_mm")
    window = spec.float_list_parameter("hu_window")
    return InputSpec((spacing[0], spacing[1], spacing[2]), (window[0], window[1]))


def _card(runtime: InferenceRuntime, model: str, version: int) -> tuple[dict[str, Any], str]:
    path = runtime.repository.card_path(model, version).with_name(CARD_JSON)
    try:
        return dict(json.loads(path.read_text(encoding="utf-8"))), str(path)
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"model {model} version {version}: cannot read {path}: {exc}") from None


def candidate_settings(runtime: InferenceRuntime, model: str, version: int) -> CandidateSettings:
    """Post-processing settings of a model version (``postprocess`` in its ``model_card.json``).

    Raises:
        ModelError: the card is missing or has unknown keys.
    """
    card, path = _card(runtime, model, version)
    raw = card.get("postprocess", {})
    known = {f.name for f in fields(CandidateSettings)}
    if set(raw) - known:
        raise ModelError(f"{path}: unknown postprocess keys {sorted(set(raw) - known)}")
    return CandidateSettings(**raw)


def rescorer_of(runtime: InferenceRuntime, model: str, version: int) -> Rescorer | None:
    """The version's second stage (``rescore`` in its ``model_card.json``), None when it has none.

    Raises:
        ModelError: the card is missing or its ``rescore`` section is malformed.
    """
    return _section(runtime, model, version, "rescore", Rescorer.from_mapping)


def classifier_of(runtime: InferenceRuntime, model: str, version: int) -> ClassifierRef | None:
    """The candidate classifier the version uses (``classifier`` in its ``model_card.json``), None without one.

    Raises:
        ModelError: the card is missing or its ``classifier`` section is malformed.
    """
    return _section(runtime, model, version, "classifier", ClassifierRef.from_mapping)


def _section(runtime: InferenceRuntime, model: str, version: int, key: str,
             parse: Callable[[Mapping[str, Any]], T]) -> T | None:
    """Section *key* of the version's card parsed by *parse* (None when absent); errors name the card."""
    card, path = _card(runtime, model, version)
    raw = card.get(key)
    if raw is None:
        return None
    try:
        return parse(raw)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None


def _classify(runtime: InferenceRuntime, ref: ClassifierRef, image: np.ndarray, spec: InputSpec,
              timings: dict[str, float]) -> Classify:
    """The classifier as find_nodules calls it, on the preprocessed *image*; its time goes to ``timings``."""
    def classify(centres: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        logits = classifier_logits(runtime, ref, image, centres, spec)
        timings["classifier"] = timings.get("classifier", 0.0) + time.perf_counter() - t0
        return logits

    return classify


def probability_map(runtime: InferenceRuntime, image: np.ndarray, model: str = MODEL_NAME,
                    version: int | None = None, window: SlidingWindow = SlidingWindow()) -> tuple[np.ndarray, int]:
    """Nodule probability of a preprocessed *image* (network grid, [0, 1]): (probability, version used)."""
    result = sliding_window_inference(runtime, model, image, window, version)
    return result.output[0], result.version


def detect_nodules(runtime: InferenceRuntime, hu: np.ndarray, grid: Grid, model: str = MODEL_NAME,
                   version: int | None = None, settings: CandidateSettings | None = None,
                   window: SlidingWindow = SlidingWindow(), backend: ArrayBackend | None = None,
                   rescore: bool = True, features: bool = False) -> Detection:
    """Find and measure nodules in *hu* (any axis order; reoriented to axial first); resampling to the
    network grid runs on *backend* (numpy when None).

    The version is resolved once (hot reload never mixes versions within a volume).
    *settings* None: the version's own post-processing settings (operating point). *rescore* False:
    score by the network's peak probability even when the version has a second stage. *features*: measure
    the second-stage features of every candidate even without a second stage (used to fit one; with the
    classifier's logit when the card names a classifier); otherwise they are measured only when the
    version's second stage needs them. ``timings_s``: preprocess, network, classifier (when it ran) and
    candidates (the rest).

    Raises:
        ModelError: model/config problems; RetryLater: Triton down or model not ready.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    hu, grid = reorient_axial(hu, grid)
    resolved = runtime.resolve_version(model, version)
    settings = settings or candidate_settings(runtime, model, resolved)
    spec = input_spec(runtime.spec(model))
    image, net_grid = to_network_grid(hu, grid, spec, backend)
    timings["preprocess"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    prob, used = probability_map(runtime, image, model, resolved, window)
    timings["network"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    lo, hi = spec.hu_window
    net_hu = image * (hi - lo) + lo
    lung = lung_mask(net_hu, net_grid)
    rescorer = rescorer_of(runtime, model, resolved) if rescore else None
    measured = net_hu if rescorer is not None or features else None
    ref = classifier_of(runtime, model, resolved)
    wanted = features or (rescorer is not None and "classifier_logit" in rescorer.features)
    classify = _classify(runtime, ref, image, spec, timings) if ref is not None and wanted else None
    nodules = find_nodules(prob, net_grid, hu, grid, lung, settings, measured, rescorer, classify=classify)
    timings["candidates"] = time.perf_counter() - t2 - timings.get("classifier", 0.0)
    LOGGER.info("lung nodules: %d candidate(s) above %.2f with %s v%d in %.1f s", len(nodules),
                settings.min_score, model, used, sum(timings.values()))
    return Detection(nodules, model, used, grid, net_grid, prob, lung, timings, ref if classify is not None else None)


def card_summary(runtime: InferenceRuntime, model: str, version: int) -> dict[str, Any]:
    """The version's ``model_card.json`` (empty dict when absent)."""
    path = runtime.repository.card_path(model, version).with_name(CARD_JSON)
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")))
