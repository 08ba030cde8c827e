"""Second stage of the lung-nodule detector: false-positive reduction by candidate features.

The network scores a vessel cut across, or a vessel junction, as confidently as a nodule: its
peak probability does not tell them apart. What does is the neighbourhood: a nodule is a compact
blob surrounded by aerated lung, a vessel segment continues as tissue beyond the detected part.
``candidate_features`` measures that on the network grid (1 mm voxels for the shipped model) for
one connected component of the probability map; a :class:`Rescorer` (a logistic regression fitted
by ``aiws rescore`` on the candidates of phantoms the network never saw, stored in the model
version's ``model_card.json`` under ``rescore``) turns the features into the candidate's score.

Features (all pure functions of probability, HU and lung mask on the network grid):
- ``peak_logit``: logit of the component's peak probability (the network's own score).
- ``log_volume``: log of the component's voxel count.
- ``mean_hu``, ``std_hu``: HU inside the component.
- ``elongation``, ``flatness``: half log of the largest / smallest and middle / smallest eigenvalue
  of the component's voxel covariance (0 for a sphere; a tube is elongated).
- ``shell_tissue``: share of a shell 1-3 voxels outside the component that is tissue (> -550 HU)
  inside the lung (vessels leaving the candidate); ``shell_wall``: share of that shell outside the
  lung (chest wall, mediastinum).
- ``continuity``: log of (tissue connected to the component within its equivalent radius + 6 voxels)
  / (component volume): about 0 for an isolated nodule, large for a vessel.
- ``far_tissue``: share of a shell 4-6 voxels outside that is tissue inside the lung.
- ``dot``: log(1 + the strongest Hessian dot response inside the component) (``blobs.py``): high for a
  compact blob, low along a vessel; 0 when no dot map is given.
- ``blob``: 1 for a candidate the dot filter added (no network component there), else 0 (set by the
  candidate search, not by :func:`candidate_features`).
- ``classifier_logit``: the candidate classifier's logit (``classifier.py``, a 3D CNN on the CT around the
  candidate), for versions whose card names one (set by the candidate search).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from models.errors import ModelError
from models.lung_nodules.blobs import DotMap

FEATURES = ("peak_logit", "log_volume", "mean_hu", "std_hu", "elongation", "flatness", "shell_tissue",
            "shell_wall", "continuity", "far_tissue", "dot", "blob", "classifier_logit")
TISSUE_HU = -550.0
MARGIN = 8  # voxels around the component's box
_CROSS = ndimage.generate_binary_structure(3, 1)
_FULL = np.ones((3, 3, 3), dtype=bool)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1.0 - 1e-6)
    return math.log(p / (1.0 - p))


def candidate_features(prob: np.ndarray, hu: np.ndarray, lung: np.ndarray, labels: np.ndarray, label: int,
                       box: tuple[slice, ...], dots: DotMap | None = None) -> dict[str, float]:
    """Features of component *label* of *labels* (its bounding *box*), all arrays on the network grid
    (*dots*: the dot-filter map; without it ``dot`` is 0). All of FEATURES but ``blob`` and ``classifier_logit``."""
    sl = tuple(slice(max(s.start - MARGIN, 0), min(s.stop + MARGIN, n)) for s, n in zip(box, prob.shape, strict=True))
    comp = labels[sl] == label
    h, lg = hu[sl], lung[sl]
    n = int(comp.sum())
    pts = np.argwhere(comp).astype(np.float64)
    ev = np.sort(np.clip(np.linalg.eigvalsh(np.cov(pts.T)), 1e-3, None)) if n >= 4 else np.ones(3)
    near = ndimage.binary_dilation(comp, _CROSS, iterations=1)
    mid = ndimage.binary_dilation(near, _CROSS, iterations=2)
    far_in = ndimage.binary_dilation(mid, _CROSS, iterations=1)
    far_out = ndimage.binary_dilation(far_in, _CROSS, iterations=2)
    tissue = h > TISSUE_HU
    shell, far = mid & ~near, far_out & ~far_in
    radius = (3.0 * n / (4.0 * math.pi)) ** (1.0 / 3.0) + 6.0
    c = pts.mean(axis=0)
    zz, yy, xx = np.ogrid[tuple(slice(0, s) for s in comp.shape)]
    ball = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= radius ** 2
    region, _ = ndimage.label((tissue & ball) | comp, _FULL)
    ids = np.unique(region[comp])
    connected = int(np.isin(region, ids[ids > 0]).sum())
    inside = h[comp]
    return {
        "peak_logit": _logit(float(prob[sl][comp].max())),
        "log_volume": math.log(n),
        "mean_hu": float(inside.mean()),
        "std_hu": float(inside.std()),
        "elongation": 0.5 * math.log(ev[2] / ev[0]),
        "flatness": 0.5 * math.log(ev[1] / ev[0]),
        "shell_tissue": float((shell & tissue & lg).sum()) / max(int(shell.sum()), 1),
        "shell_wall": float((shell & ~lg).sum()) / max(int(shell.sum()), 1),
        "continuity": math.log(max(connected, n) / n),
        "far_tissue": float((far & tissue & lg).sum()) / max(int(far.sum()), 1),
        "dot": math.log1p(dots.max_in(comp, sl)) if dots is not None else 0.0,
    }


@dataclass(frozen=True)
class Rescorer:
    """Logistic regression on standardised features: score = sigmoid(bias + sum(w * (x - mean) / scale))."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float

    def __post_init__(self) -> None:
        unknown = set(self.features) - set(FEATURES)
        if unknown:
            raise ModelError(f"rescore: unknown features {sorted(unknown)} (known: {', '.join(FEATURES)})")
        if not len(self.features) == len(self.mean) == len(self.scale) == len(self.weights) or not self.features:
            raise ModelError("rescore: features, mean, scale and weights need the same non-zero length")
        if min(self.scale) <= 0:
            raise ModelError("rescore: every scale must be > 0")

    def score(self, values: Mapping[str, float]) -> float:
        """Probability that the candidate is a nodule."""
        z = self.bias + sum(w * (values[f] - m) / s for f, m, s, w in
                            zip(self.features, self.mean, self.scale, self.weights, strict=True))
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Rescorer:
        """From a model card's ``rescore`` section.

        Raises:
            ModelError: a key is missing or a value is not a number.
        """
        try:
            return cls(tuple(str(f) for f in raw["features"]), _floats(raw["mean"]), _floats(raw["scale"]),
                       _floats(raw["weights"]), float(raw["bias"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"rescore: bad section ({exc!r}): needs features, mean, scale, weights, bias") from None

    def to_mapping(self) -> dict[str, Any]:
        return {"method": "logistic regression", "features": list(self.features), "mean": list(self.mean),
                "scale": list(self.scale), "weights": list(self.weights), "bias": self.bias}


def _floats(values: Sequence[Any]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)
