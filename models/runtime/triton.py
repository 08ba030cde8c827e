"""Triton Inference Server through ``tritonclient`` (gRPC by default, HTTP as an option).

The only module of :mod:`models` that talks to the network. Tensor names, shapes and data types
come from the same ``config.pbtxt`` as the in-process runtime; the version is always explicit
(resolved from the repository, see :meth:`InferenceRuntime.resolve_version`).

Transient failures are :class:`~models.errors.RetryLater` subclasses, so the service retries
the job later instead of failing it: :class:`ServerUnavailable` (connection refused, reset,
timeout) and :class:`ModelNotReady` (server up, model version not loaded yet — e.g. right after
``aiws export`` until the server has polled its repository).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from tritonclient.utils import InferenceServerException

from models.runtime.base import Arrays, InferenceRuntime
from models.runtime.errors import InferenceFailed, ModelNotReady, ServerUnavailable
from models.runtime.model_config import ModelSpec
from models.runtime.repository import ModelRepository
from models.runtime.settings import Protocol

LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

#: gRPC status codes (and HTTP phrases) that mean "try again later", not "this request is wrong".
_TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "ABORTED", "RESOURCE_EXHAUSTED", "503", "504")
_NOT_READY = ("not ready", "unknown model", "is not found", "unavailable model")


class TritonRuntime(InferenceRuntime):
    """Runs models on a Triton server; one client per runtime object, re-created after a failure."""

    backend = "triton"

    def __init__(self, repository: ModelRepository, url: str, protocol: Protocol = "grpc",
                 timeout_seconds: float = 120.0) -> None:
        super().__init__(repository)
        self.url = url
        self.protocol = protocol
        self.timeout_seconds = timeout_seconds
        self._client: Any = None
        self._ready: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    # -- connection -------------------------------------------------------------------------
    def _module(self) -> Any:
        if self.protocol == "http":
            import tritonclient.http as module
        else:
            import tritonclient.grpc as module
        return module

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                module = self._module()
                if self.protocol == "http":
                    self._client = module.InferenceServerClient(
                        self.url, connection_timeout=self.timeout_seconds, network_timeout=self.timeout_seconds)
                else:
                    self._client = module.InferenceServerClient(self.url)
            return self._client

    def _drop_client(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._ready.clear()
        if client is not None:
            try:
                client.close()
            except (InferenceServerException, OSError) as exc:
                LOGGER.debug("closing Triton client for %s: %s", self.url, exc)

    def _timeout_kw(self) -> dict[str, float]:
        return {"client_timeout": self.timeout_seconds} if self.protocol == "grpc" else {}

    def _call(self, what: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(client)``; map transport failures to :class:`ServerUnavailable`."""
        client = self._get_client()
        try:
            return fn(client)
        except InferenceServerException as exc:
            status = str(exc.status() or "")
            text = str(exc.message() or exc)
            if any(code in status for code in _TRANSIENT) or "failed to connect" in text.lower():
                self._drop_client()
                raise ServerUnavailable(f"Triton at {self.url} ({self.protocol}): {what}: {status} {text}") from None
            if any(phrase in text.lower() for phrase in _NOT_READY):
                self._ready.clear()
                raise ModelNotReady(f"Triton at {self.url}: {what}: {text}") from None
            raise InferenceFailed(f"Triton at {self.url}: {what}: {status} {text}") from None
        except (OSError, TimeoutError) as exc:  # HTTP client: refused, reset, timed out
            self._drop_client()
            raise ServerUnavailable(f"Triton at {self.url} ({self.protocol}): {what}: {exc}") from None

    # -- readiness --------------------------------------------------------------------------
    def is_ready(self, model: str, version: int) -> bool:
        """True when the server is live and *model* *version* is loaded.

        Raises:
            ServerUnavailable: the server cannot be reached.
        """
        kw = self._timeout_kw()
        live = self._call("server liveness", lambda c: c.is_server_live(**kw))
        if not live:
            return False
        return bool(self._call(f"readiness of {model} version {version}",
                               lambda c: c.is_model_ready(model, str(version), **kw)))

    def check_ready(self, model: str, version: int) -> None:
        """Raise unless *model* *version* is ready (checked once, then after any failure).

        Raises:
            ServerUnavailable: server down or not live.
            ModelNotReady: server up, model version not loaded.
        """
        key = (model, version)
        if key in self._ready:
            return
        kw = self._timeout_kw()
        if not self._call("server liveness", lambda c: c.is_server_live(**kw)):
            raise ServerUnavailable(f"Triton at {self.url}: server is not live")
        if not self._call(f"readiness of {model} version {version}",
                          lambda c: c.is_model_ready(model, str(version), **kw)):
            raise ModelNotReady(f"Triton at {self.url}: model {model} version {version} is not ready "
                                f"(still loading, or not in the server's repository)")
        self._ready.add(key)

    # -- inference --------------------------------------------------------------------------
    def _run_batch(self, spec: ModelSpec, version: int, inputs: Arrays) -> dict[str, np.ndarray]:
        self.check_ready(spec.name, version)
        module = self._module()
        infer_inputs = []
        for tensor in spec.inputs:
            array = np.ascontiguousarray(inputs[tensor.name])
            item = module.InferInput(tensor.name, list(array.shape), tensor.data_type)
            item.set_data_from_numpy(array)
            infer_inputs.append(item)
        outputs = [module.InferRequestedOutput(t.name) for t in spec.outputs]
        result = self._call(
            f"inference of {spec.name} version {version}",
            lambda c: c.infer(spec.name, infer_inputs, model_version=str(version), outputs=outputs,
                              **self._timeout_kw()),
        )
        arrays: dict[str, np.ndarray] = {}
        for tensor in spec.outputs:
            value = result.as_numpy(tensor.name)
            if value is None:
                raise InferenceFailed(f"Triton at {self.url}: model {spec.name} returned no {tensor.name!r}")
            arrays[tensor.name] = value
        return arrays

    def close(self) -> None:
        self._drop_client()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "url": self.url, "protocol": self.protocol}
