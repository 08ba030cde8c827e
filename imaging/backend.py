"""The array backend, chosen once at start-up: numpy (CPU) or cupy (CUDA GPU).

There is no module-level state: the composition root builds one
:class:`ArrayBackend` (``ArrayBackend.select("auto")``) and passes it to the
preprocessing functions of :mod:`imaging.preprocess`.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import scipy.ndimage

from imaging.errors import ImagingError

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArrayBackend:
    """*xp*: the array module (numpy or cupy); *ndimage*: its ``scipy.ndimage`` counterpart."""

    name: str
    xp: ModuleType
    ndimage: ModuleType

    @classmethod
    def numpy(cls) -> ArrayBackend:
        return cls("numpy", np, scipy.ndimage)

    @classmethod
    def cupy(cls) -> ArrayBackend:
        """The cupy backend on the current CUDA device.

        Raises:
            ImagingError: cupy is not installed or no CUDA device is visible.
        """
        try:
            cupy = importlib.import_module("cupy")
            ndimage = importlib.import_module("cupyx.scipy.ndimage")
            count = int(cupy.cuda.runtime.getDeviceCount())
        except ImportError as exc:
            raise ImagingError(f"array backend 'cupy': cupy is not installed ({exc})") from exc
        except Exception as exc:  # cupy raises CUDARuntimeError (not exported without a driver)
            raise ImagingError(f"array backend 'cupy': no usable CUDA device ({exc})") from exc
        if count < 1:
            raise ImagingError("array backend 'cupy': no CUDA device")
        return cls("cupy", cupy, ndimage)

    @classmethod
    def select(cls, prefer: str = "auto") -> ArrayBackend:
        """``"numpy"``, ``"cupy"`` (raises when unavailable) or ``"auto"`` (cupy when a GPU is usable).

        Raises:
            ImagingError: unknown *prefer*, or ``"cupy"`` without cupy and a device.
        """
        if prefer == "numpy":
            backend = cls.numpy()
        elif prefer == "cupy":
            backend = cls.cupy()
        elif prefer == "auto":
            try:
                backend = cls.cupy()
            except ImagingError as exc:
                LOGGER.info("array backend: numpy (%s)", exc)
                backend = cls.numpy()
        else:
            raise ImagingError(f"array backend {prefer!r}: expected 'auto', 'numpy' or 'cupy'")
        LOGGER.info("array backend: %s", backend.name)
        return backend

    def asarray(self, array: Any, dtype: Any = None) -> Any:
        """*array* on this backend's device."""
        return self.xp.asarray(array, dtype=dtype)

    def to_numpy(self, array: Any) -> np.ndarray:
        """*array* as a numpy array on the host."""
        if self.name == "cupy":
            return self.xp.asnumpy(array)  # type: ignore[no-any-return]
        return np.asarray(array)
