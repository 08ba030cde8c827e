"""Patch augmentation of the mammography training loop: MONAI array transforms named in the config
(``augment``: name -> keyword arguments, as in ``configs/families.toml``'s ``[augment]``).

Intensity transforms change the input only; spatial ones (:data:`SPATIAL`) change the input and its three target
channels alike (one call on the stacked channels; the targets are thresholded at 0.5 afterwards, so they stay
binary). Each transform carries its own
``prob``; the order is the config's.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: Transforms a config may name (an explicit registry: a name outside it is an error).
INTENSITY = ("RandScaleIntensity", "RandShiftIntensity", "RandAdjustContrast", "RandGaussianNoise", "RandBiasField",
             "RandGaussianSmooth")
SPATIAL = ("RandFlip", "Rand2DElastic", "RandZoom")
TRANSFORMS = INTENSITY + SPATIAL


class AugmentError(ValueError):
    """An augmentation the loop does not know, or arguments MONAI refuses."""


def _array_transform(name: str, kwargs: Mapping[str, Any]) -> Any:
    import monai.transforms as mt

    args = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    try:
        return getattr(mt, name)(**args)
    except TypeError as exc:
        raise AugmentError(f"augment.{name}: {exc}") from exc


class PatchAugment:
    """Applies the configured transforms to (x, y) batches: x (B, 1, P, P), y (B, 3, P, P), float32."""

    def __init__(self, spec: Mapping[str, Mapping[str, Any]], seed: int) -> None:
        unknown = sorted(set(spec) - set(TRANSFORMS))
        if unknown:
            raise AugmentError(f"augment: unknown transforms {unknown} (known: {', '.join(TRANSFORMS)})")
        self.steps = []
        for k, (name, kwargs) in enumerate(spec.items()):
            transform = _array_transform(name, kwargs)
            transform.set_random_state(seed + k)
            self.steps.append((name, transform))

    def __call__(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from monai.data import get_track_meta, set_track_meta

        tracked = get_track_meta()
        set_track_meta(False)  # plain tensors: MetaTensor bookkeeping cost more than most transforms
        try:
            return self._apply(xs, ys)
        finally:
            set_track_meta(tracked)

    def _apply(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        xs, ys = xs.copy(), ys.copy()
        channels = xs.shape[1]
        for i in range(len(xs)):
            x, y = torch.from_numpy(xs[i]), torch.from_numpy(ys[i])
            for name, transform in self.steps:
                if name in SPATIAL:  # one draw for input and targets: one call on the stacked channels
                    both = torch.as_tensor(transform(torch.cat([x, y])))
                    x, y = both[:channels], both[channels:]
                else:
                    x = torch.as_tensor(transform(x))
            xs[i] = np.asarray(x, dtype=np.float32)
            ys[i] = (np.asarray(y, dtype=np.float32) > 0.5).astype(np.float32)
        return xs, ys
