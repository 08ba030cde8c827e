"""ONNX Runtime in-process: CPU execution provider, CUDA when present (``device`` auto/cuda).

Sessions are created once per (model, version) and kept in a :class:`SessionCache` owned by the
runtime object (no module-level state). The cache is bounded: when a new version is exported and
picked up (hot reload), the least recently used session is dropped.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _state

from models.runtime.base import Arrays, InferenceRuntime
from models.runtime.errors import InferenceFailed, ModelConfigError, ModelNotFound
from models.runtime.model_config import ModelSpec
from models.runtime.repository import ModelRepository
from models.runtime.settings import Device

LOGGER = logging.getLogger(__name__)

#: What ONNX Runtime raises (its pybind classes derive from Exception directly).
ORT_ERRORS: tuple[type[Exception], ...] = (
    _state.Fail, _state.InvalidArgument, _state.InvalidGraph, _state.InvalidProtobuf, _state.NoSuchFile,
    _state.NotImplemented, _state.RuntimeException, _state.EngineError, _state.NoModel,
)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def providers_for(device: Device) -> list[str]:
    """Execution providers for *device*.

    Raises:
        ModelConfigError: ``cuda`` requested but this ONNX Runtime has no CUDA execution provider.
    """
    available = ort.get_available_providers()
    if device == "cuda" and CUDA not in available:
        raise ModelConfigError(f"runtime device 'cuda': ONNX Runtime offers only {', '.join(available)}")
    if device in ("cuda", "auto") and CUDA in available:
        return [CUDA, CPU]
    return [CPU]


def _check_session(spec: ModelSpec, session: ort.InferenceSession, path: Path) -> None:
    have_in = [i.name for i in session.get_inputs()]
    have_out = [o.name for o in session.get_outputs()]
    want_in = [t.name for t in spec.inputs]
    want_out = [t.name for t in spec.outputs]
    if sorted(have_in) != sorted(want_in) or not set(want_out) <= set(have_out):
        raise ModelConfigError(f"{path}: ONNX inputs {have_in} / outputs {have_out} do not match "
                               f"config.pbtxt inputs {want_in} / outputs {want_out}")


class SessionCache:
    """``InferenceSession`` objects keyed by (model, version); thread-safe, at most *max_sessions*."""

    def __init__(self, providers: list[str], intra_op_threads: int = 0, max_sessions: int = 4) -> None:
        self.providers = providers
        self.intra_op_threads = intra_op_threads
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[tuple[str, int], ort.InferenceSession] = OrderedDict()
        self._lock = threading.Lock()
        self.created = 0  # sessions created so far (a reuse check for tests and logs)

    def get(self, spec: ModelSpec, version: int, path: Path) -> ort.InferenceSession:
        """The session for (spec.name, version), created from *path* on first use.

        Raises:
            ModelNotFound: *path* does not exist.
            ModelConfigError: ONNX Runtime cannot load the file or its tensors differ from *spec*.
        """
        key = (spec.name, version)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
                return session
            session = self._create(spec, path)
            self._sessions[key] = session
            self.created += 1
            while len(self._sessions) > self.max_sessions:
                old, _ = self._sessions.popitem(last=False)
                LOGGER.info("dropped ONNX Runtime session %s version %d", *old)
            return session

    def _create(self, spec: ModelSpec, path: Path) -> ort.InferenceSession:
        if not path.is_file():
            raise ModelNotFound(f"model {spec.name}: {path} does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=self.providers)
        except ORT_ERRORS as exc:
            raise ModelConfigError(f"{path}: ONNX Runtime cannot load the model: {exc}") from None
        _check_session(spec, session, path)
        LOGGER.info("ONNX Runtime session for %s from %s (%s)", spec.name, path, ", ".join(session.get_providers()))
        return session

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()


class OnnxRuntime(InferenceRuntime):
    """Runs models in this process with ONNX Runtime."""

    backend = "onnxruntime"

    def __init__(self, repository: ModelRepository, device: Device = "auto", intra_op_threads: int = 0) -> None:
        super().__init__(repository)
        self.device = device
        self.sessions = SessionCache(providers_for(device), intra_op_threads)

    def _run_batch(self, spec: ModelSpec, version: int, inputs: Arrays) -> dict[str, np.ndarray]:
        session = self.sessions.get(spec, version, self.repository.model_path(spec.name, version))
        names = [t.name for t in spec.outputs]
        try:
            values = session.run(names, dict(inputs))
        except ORT_ERRORS as exc:
            raise InferenceFailed(f"model {spec.name} version {version}: ONNX Runtime failed: {exc}") from None
        return dict(zip(names, values, strict=True))

    def close(self) -> None:
        self.sessions.clear()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "providers": self.sessions.providers}
