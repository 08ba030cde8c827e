"""The mammography network through :mod:`models.runtime` (ONNX Runtime or Triton), and its calibration.

The exported model takes fixed 512-pixel tiles ([1, 1, 512, 512] = [channels, z, y, x], see
``config.pbtxt``); :func:`runtime_predictor` tiles a whole image with the runtime's sliding
window (Gaussian blending), so both backends see identical requests. The calibration
(operating probabilities, exam-score deciles, link tolerance) is read from the version's
``model_card.json`` (key ``operating_point``), written by ``training.mammography.export``.
"""
from __future__ import annotations

import json
import logging

import numpy as np

from models.errors import ModelError
from models.mammography.analysis import Predict
from models.mammography.detection import Calibration
from models.runtime import InferenceRuntime, SlidingWindow, sliding_window_inference

LOGGER = logging.getLogger(__name__)

CARD_JSON = "model_card.json"
#: ``network_input`` of a model card: the display window alone (version 1; also when the key is absent), or the
#: window-normalised image mapped to the breast's own air and fat levels.
WINDOW = "window"
BREAST_RELATIVE = "breast_relative"
NETWORK_INPUTS = (WINDOW, BREAST_RELATIVE)


def runtime_predictor(runtime: InferenceRuntime, model: str, version: int) -> Predict:
    """A ``predict`` callable: (1, 1, H, W) normalised image -> (1, 3, H, W) logits, tile by tile."""

    def predict(x: np.ndarray) -> np.ndarray:
        window = SlidingWindow(overlap=0.25, batch_size=4, pad_value=float(x.min()))
        result = sliding_window_inference(runtime, model, x[0][:, None], window, version=version)
        return result.output[:, 0][None]

    return predict


def load_calibration(runtime: InferenceRuntime, model: str, version: int) -> Calibration:
    """The calibration stored with *model* version *version*.

    Raises:
        ModelError: the version has no model card or the card has no valid ``operating_point``.
    """
    path = runtime.repository.root / model / str(version) / CARD_JSON
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
        point = card["operating_point"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"model {model} version {version}: no calibration (operating_point) in {path}: {exc!r}") from exc
    return Calibration.from_json(point, str(path))


def relative_input(runtime: InferenceRuntime, model: str, version: int) -> bool:
    """Whether *model* version *version* was trained on the breast-relative image: its card's ``network_input``
    is :data:`BREAST_RELATIVE`; a card without the key (version 1) or with :data:`WINDOW` means the display
    window alone (:func:`models.mammography.analysis.predict_logits`).

    Raises:
        ModelError: an unreadable card, or a ``network_input`` that is neither.
    """
    path = runtime.repository.root / model / str(version) / CARD_JSON
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("network_input", WINDOW)
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(f"model {model} version {version}: unreadable model card {path}: {exc!r}") from exc
    if value not in NETWORK_INPUTS:
        raise ModelError(f"model {model} version {version}: network_input {value!r} is not one of "
                         f"{', '.join(NETWORK_INPUTS)}")
    return bool(value == BREAST_RELATIVE)
