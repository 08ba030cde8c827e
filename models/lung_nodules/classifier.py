"""Second-stage candidate classifier of the lung-nodule detector: a small 3D CNN on the CT around a candidate.

The segmentation network scores a vessel junction as confidently as a nodule, and a nodule on the pleura
often lower than a vessel; hand-made shape features (``rescore.py``) fitted on a few dozen tuning scans
do not generalise to the nodules they rarely saw. The classifier learns nodule against the rest from
thousands of phantom patches instead. It sees a candidate in two cubes centred on it, both on the
network's grid and in its intensity window (``preprocess.py``, values in [0, 1], 0 = air):

- channel 0: ``size`` voxels a side at the network spacing (32 mm at 1 mm): the candidate's own shape;
- channel 1: ``size`` voxels a side at twice the spacing (means of 2 x 2 x 2 blocks, 64 mm): what goes
  on around it (a vessel that continues, the chest wall, the mediastinum).

Its logit is one feature of the logistic second stage (``classifier_logit``); a lung_nodules version's
model card ties it to one classifier version (``rescore.classifier``). Input ``patches``
``[N, 2, size, size, size]`` and output ``nodule_logit`` ``[N, 1]`` are read from the classifier's
``config.pbtxt``, whose ``spacing_mm`` and ``hu_window`` must be the network's. Trained by
``aiws train lung_nodule_classifier`` (``training/lung_nodules/classifier.py``). numpy only.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.errors import ModelError
from models.lung_nodules.preprocess import InputSpec
from models.runtime.base import InferenceRuntime

MODEL_NAME = "lung_nodule_classifier"
INPUT_NAME = "patches"
OUTPUT_NAME = "nodule_logit"
PATCH = 32
CHANNELS = 2  # the cube at the network spacing, and at twice it


def cube(image: np.ndarray, centre: tuple[int, int, int], size: int, stride: int = 1, fill: float = 0.0
         ) -> np.ndarray:
    """A cube of ``size`` voxels a side of *image* around the integer index *centre* (float32).

    *stride* 1: the voxels ``[c - size // 2, c - size // 2 + size)`` on each axis. *stride* s: the means
    of s x s x s blocks over ``[c - s * size // 2, ...)``, i.e. *size* voxels of s times the spacing.
    Voxels outside *image* count as *fill*.
    """
    span = size * stride
    lo = [int(c) - span // 2 for c in centre]
    out = np.full((span, span, span), fill, dtype=np.float32)
    src = tuple(slice(max(a, 0), min(a + span, n)) for a, n in zip(lo, image.shape, strict=True))
    if all(s.stop > s.start for s in src):
        dst = tuple(slice(s.start - a, s.stop - a) for s, a in zip(src, lo, strict=True))
        out[dst] = image[src]
    if stride == 1:
        return out
    return out.reshape(size, stride, size, stride, size, stride).mean(axis=(1, 3, 5), dtype=np.float32)


def candidate_patches(image: np.ndarray, centres: np.ndarray, size: int = PATCH) -> np.ndarray:
    """The classifier's input ``(n, 2, size, size, size)`` float32 for *centres* ``(n, 3)`` (indices of *image*,
    the preprocessed volume on the network grid)."""
    out = np.empty((len(centres), CHANNELS, size, size, size), dtype=np.float32)
    for i, c in enumerate(np.rint(np.asarray(centres)).astype(int).reshape(-1, 3)):
        centre = (int(c[0]), int(c[1]), int(c[2]))
        out[i, 0] = cube(image, centre, size, 1)
        out[i, 1] = cube(image, centre, size, 2)
    return out


@dataclass(frozen=True)
class ClassifierRef:
    """The classifier version a lung_nodules version uses (``rescore.classifier`` in its model card)."""

    model: str
    version: int

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ClassifierRef:
        """Raises: ModelError when ``model`` or a positive integer ``version`` is missing."""
        try:
            model, version = str(raw["model"]), int(raw["version"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"rescore.classifier {dict(raw)!r}: needs model and version") from None
        if version < 1:
            raise ModelError(f"rescore.classifier: version {version} must be >= 1")
        return cls(model, version)

    def to_mapping(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version}


def patch_size(runtime: InferenceRuntime, ref: ClassifierRef, network: InputSpec) -> int:
    """The classifier's cube size, from its ``config.pbtxt`` (input dims ``[2, s, s, s]``).

    Raises:
        ModelError: other dims, or a ``spacing_mm`` / ``hu_window`` that is not the network's (*network*).
    """
    spec = runtime.spec(ref.model)
    dims = spec.input(INPUT_NAME).dims
    if len(dims) != 4 or dims[0] != CHANNELS or len(set(dims[1:])) != 1 or dims[1] < 1:
        raise ModelError(f"model {ref.model}: input {INPUT_NAME} dims {list(dims)}; need [{CHANNELS}, s, s, s]")
    spacing = spec.float_list_parameter("spacing_mm")
    window = spec.float_list_parameter("hu_window")
    if tuple(spacing) != tuple(network.spacing_mm) or tuple(window) != tuple(network.hu_window):
        raise ModelError(f"model {ref.model}: spacing {list(spacing)} mm and window {list(window)} differ from the "
                         f"network's {list(network.spacing_mm)} mm and {list(network.hu_window)}")
    return int(dims[1])


def classifier_logits(runtime: InferenceRuntime, ref: ClassifierRef, image: np.ndarray, centres: np.ndarray,
                      network: InputSpec) -> np.ndarray:
    """The classifier's logit for each of *centres* ``(n, 3)`` (indices of the preprocessed *image*), ``(n,)``.

    Raises:
        ModelError: see :func:`patch_size`; the runtime's errors (RetryLater when Triton is unavailable).
    """
    size = patch_size(runtime, ref, network)
    if not len(centres):
        return np.zeros(0, dtype=np.float32)
    result = runtime.infer(ref.model, {INPUT_NAME: candidate_patches(image, centres, size)}, ref.version)
    return result.outputs[OUTPUT_NAME].reshape(-1)
