"""Triton Inference Server through ``tritonclient`` (gRPC by default, HTTP as an option).

The only module of :mod:`models` that talks to the network. Tensor names, shapes and data types
come from the same ``config.pbtxt`` as the in-process runtime; the version is always explicit
(resolved from the repository, see :meth:`InferenceRuntime.resolve_version`).

Transient failures are :class:`~models.errors.RetryLater` subclasses, so the service retries
the job later instead of failing it: :class:`ServerUnavailable` (connection refused, reset,
timeout) and :class:`ModelNotReady` (server up, model version not loaded yet — e.g. right after
``aiws export`` until the server has polled its repository).

With ``shared_memory=True`` (server on the same host) tensors travel through POSIX shared memory
regions registered with the server instead of inside the gRPC/HTTP messages: one input and one
output region per tensor and model version, sized for ``max_batch_size``, created once and
re-registered after the server restarts. Tensors with a variable dimension still travel inline.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from tritonclient.utils import InferenceServerException

from models.runtime.base import Arrays, InferenceRuntime
from models.runtime.errors import InferenceFailed, ModelNotReady, ServerUnavailable
from models.runtime.model_config import ModelSpec, TensorSpec
from models.runtime.repository import ModelRepository
from models.runtime.settings import Protocol

LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

#: gRPC status codes (and HTTP phrases) that mean "try again later", not "this request is wrong".
_TRANSIENT = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "ABORTED", "RESOURCE_EXHAUSTED", "503", "504")
_NOT_READY = ("not ready", "unknown model", "is not found", "unavailable model")


class _Region:
    """One system shared-memory region (ours), and whether the server currently knows it."""

    def __init__(self, name: str, byte_size: int) -> None:
        import tritonclient.utils.shared_memory as shm

        self.name = name
        self.key = "/" + name
        self.byte_size = byte_size
        self.handle = shm.create_shared_memory_region(name, self.key, byte_size)
        self.registered = False

    def destroy(self) -> None:
        import tritonclient.utils.shared_memory as shm

        shm.destroy_shared_memory_region(self.handle)


class TritonRuntime(InferenceRuntime):
    """Runs models on a Triton server; one client per runtime object, re-created after a failure."""

    backend = "triton"

    def __init__(self, repository: ModelRepository, url: str, protocol: Protocol = "grpc",
                 timeout_seconds: float = 120.0, shared_memory: bool = False, requests_in_flight: int = 2) -> None:
        super().__init__(repository)
        if requests_in_flight < 1:
            raise ValueError(f"requests_in_flight {requests_in_flight}: must be >= 1")
        self.requests_in_flight = requests_in_flight
        self.url = url
        self.protocol = protocol
        self.timeout_seconds = timeout_seconds
        self.shared_memory = shared_memory
        self._client: Any = None
        self._ready: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._shm_lock = threading.Lock()
        self._regions: dict[tuple[str, int, str], _Region] = {}

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
            for region in self._regions.values():
                region.registered = False
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

    def load_model(self, model: str) -> bool:
        """Ask the server to load *model* again from its repository (Triton's explicit model control), so
        that a changed ``config.pbtxt`` (a promoted version, :mod:`models.runtime.promote`) is served now.

        Returns False when the server polls its repository instead: it refuses explicit loads then and
        follows the change at its next poll.

        Raises:
            ServerUnavailable: the server cannot be reached.
            InferenceFailed: the server refused to load the model (its message says why).
        """
        kw = self._timeout_kw()

        def load(client: Any) -> bool:
            try:
                client.load_model(model, **kw)
            except InferenceServerException as exc:
                if "polling is enabled" in str(exc.message() or exc).lower():
                    return False
                raise
            return True

        with self._lock:
            self._ready = {key for key in self._ready if key[0] != model}
        return self._call(f"loading {model}", load)

    # -- inference --------------------------------------------------------------------------
    def _run_batch(self, spec: ModelSpec, version: int, inputs: Arrays) -> dict[str, np.ndarray]:
        self.check_ready(spec.name, version)
        if self.shared_memory and all(min(t.dims) > 0 for t in (*spec.inputs, *spec.outputs)):
            with self._shm_lock:
                try:
                    return self._infer_shared(spec, version, inputs)
                except InferenceFailed as exc:
                    if "shared memory" not in str(exc).lower():
                        raise
                    # the server restarted without our connection noticing: register again, once
                    LOGGER.info("Triton at %s lost our shared memory regions; registering them again", self.url)
                    for region in self._regions.values():
                        region.registered = False
                    return self._infer_shared(spec, version, inputs)
        module = self._module()
        infer_inputs = []
        for tensor in spec.inputs:
            array = np.ascontiguousarray(inputs[tensor.name])
            item = module.InferInput(tensor.name, list(array.shape), tensor.data_type)
            item.set_data_from_numpy(array)
            infer_inputs.append(item)
        outputs = [module.InferRequestedOutput(t.name) for t in spec.outputs]
        result = self._infer(spec, version, infer_inputs, outputs)
        return self._collect(spec, lambda tensor: result.as_numpy(tensor.name))

    def _collect(self, spec: ModelSpec, read: Callable[[TensorSpec], np.ndarray | None]) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for tensor in spec.outputs:
            value = read(tensor)
            if value is None:
                raise InferenceFailed(f"Triton at {self.url}: model {spec.name} returned no {tensor.name!r}")
            arrays[tensor.name] = value
        return arrays

    def _infer(self, spec: ModelSpec, version: int, infer_inputs: list[Any], outputs: list[Any]) -> Any:
        return self._call(
            f"inference of {spec.name} version {version}",
            lambda c: c.infer(spec.name, infer_inputs, model_version=str(version), outputs=outputs,
                              **self._timeout_kw()),
        )

    # -- shared memory ----------------------------------------------------------------------
    def _region(self, spec: ModelSpec, version: int, tensor: TensorSpec) -> _Region:
        """The region of *tensor* (created on first use, sized for a full batch), registered with the server."""
        key = (spec.name, version, tensor.name)
        region = self._regions.get(key)
        if region is None:
            batch = max(spec.max_batch_size, 1)
            size = batch * int(np.prod(tensor.dims)) * tensor.dtype.itemsize
            name = re.sub(r"[^A-Za-z0-9_]", "_", f"aiws_{os.getpid()}_{id(self):x}_{spec.name}_{version}_{tensor.name}")
            region = self._regions[key] = _Region(name, size)
        if not region.registered:
            kw = self._timeout_kw()

            def register(client: Any) -> None:
                client.unregister_system_shared_memory(region.name, **kw)  # a stale one of the same name
                client.register_system_shared_memory(region.name, region.key, region.byte_size, **kw)

            self._call(f"registering shared memory {region.name}", register)
            region.registered = True
        return region

    def _infer_shared(self, spec: ModelSpec, version: int, inputs: Arrays) -> dict[str, np.ndarray]:
        import tritonclient.utils.shared_memory as shm

        module = self._module()
        infer_inputs = []
        for tensor in spec.inputs:
            array = np.ascontiguousarray(inputs[tensor.name], dtype=tensor.dtype)
            region = self._region(spec, version, tensor)
            shm.set_shared_memory_region(region.handle, [array])
            item = module.InferInput(tensor.name, list(array.shape), tensor.data_type)
            item.set_shared_memory(region.name, array.nbytes)
            infer_inputs.append(item)
        outputs = []
        for tensor in spec.outputs:
            region = self._region(spec, version, tensor)
            item = module.InferRequestedOutput(tensor.name)
            item.set_shared_memory(region.name, region.byte_size)
            outputs.append(item)
        result = self._infer(spec, version, infer_inputs, outputs)

        def read(tensor: TensorSpec) -> np.ndarray | None:
            meta = result.get_output(tensor.name)  # gRPC: a message with .shape; HTTP: a dict
            if meta is None:
                return None
            shape = [int(v) for v in (meta["shape"] if isinstance(meta, dict) else meta.shape)]
            region = self._regions[(spec.name, version, tensor.name)]
            return np.array(shm.get_contents_as_numpy(region.handle, tensor.dtype, shape))

        return self._collect(spec, read)

    def close(self) -> None:
        """Unregister and remove our shared memory regions (best effort), then drop the client."""
        with self._shm_lock:
            regions, self._regions = list(self._regions.values()), {}
        client = self._client
        for region in regions:
            if region.registered and client is not None:
                try:
                    client.unregister_system_shared_memory(region.name, **self._timeout_kw())
                except (InferenceServerException, OSError) as exc:
                    LOGGER.debug("unregistering %s at %s: %s", region.name, self.url, exc)
            region.destroy()
        self._drop_client()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "url": self.url, "protocol": self.protocol, "shared_memory": self.shared_memory}
