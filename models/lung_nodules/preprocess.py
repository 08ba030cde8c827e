"""Network input: HU volume -> the network's grid (fixed spacing) and intensity window.

The spacing and HU window are read from the model's ``config.pbtxt`` parameters
(``spacing_mm = "z,y,x"``, ``hu_window = "lo,hi"``) so the preprocessing always matches the
exported network. Values: ``(clip(HU, lo, hi) - lo) / (hi - lo)`` in [0, 1]; 0 is air, which is
also the padding value of the sliding window.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imaging.backend import ArrayBackend
from models.lung_nodules.geometry import GeometryError, Grid, resample

DEFAULT_SPACING_MM = (1.0, 1.0, 1.0)
DEFAULT_HU_WINDOW = (-1000.0, 400.0)


@dataclass(frozen=True)
class InputSpec:
    """Where and how the network sees the image."""

    spacing_mm: tuple[float, float, float] = DEFAULT_SPACING_MM
    hu_window: tuple[float, float] = DEFAULT_HU_WINDOW

    def __post_init__(self) -> None:
        if len(self.spacing_mm) != 3 or min(self.spacing_mm) <= 0:
            raise GeometryError(f"network spacing {self.spacing_mm}: need three sizes > 0 (mm)")
        if len(self.hu_window) != 2 or not self.hu_window[0] < self.hu_window[1]:
            raise GeometryError(f"HU window {self.hu_window}: need low < high")


def normalise(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """HU -> [0, 1] float32 through the window."""
    lo, hi = window
    out = np.clip(hu.astype(np.float32, copy=False), lo, hi)
    out -= lo
    out /= hi - lo
    return out


def to_network_grid(hu: np.ndarray, grid: Grid, spec: InputSpec,
                    backend: ArrayBackend | None = None) -> tuple[np.ndarray, Grid]:
    """Resample *hu* (on *grid*) to the network spacing (trilinear, on *backend*) and normalise;
    returns (array, grid).

    Raises:
        GeometryError: *hu* does not have the grid's shape.
    """
    target = grid.resampled(spec.spacing_mm)
    resampled = resample(hu, grid, target, fill=spec.hu_window[0], backend=backend)
    return normalise(resampled, spec.hu_window), target
