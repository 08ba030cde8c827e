"""Triton through tritonclient against a REAL tritonserver (pytriton build, Python-backend twin of the repository)."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from models.errors import RetryLater
from models.runtime import ModelNotReady, ModelRepository, ServerUnavailable, SlidingWindow, sliding_window_inference
from models.runtime.ort import OnnxRuntime
from models.runtime.triton import TritonRuntime
from tiny_onnx import ROI
from triton_server import triton_factory  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow, pytest.mark.network]


def test_server_down_is_retry_later_not_failure(repo: Path) -> None:
    from peers import free_port

    runtime = TritonRuntime(ModelRepository(repo), f"127.0.0.1:{free_port()}", "grpc", timeout_seconds=5)
    x = np.zeros((1, 1, ROI, ROI, ROI), dtype=np.float32)
    with pytest.raises(ServerUnavailable, match="Connection refused|failed to connect") as info:
        runtime.infer("pointwise", {"x": x})
    assert isinstance(info.value, RetryLater)


def test_triton_equals_onnxruntime_grpc_and_http(repo: Path, triton_factory) -> None:  # type: ignore[no-untyped-def] # noqa: F811
    server = triton_factory(repo, wait_models=("conv", "pointwise"))
    repository = ModelRepository(repo)
    local = OnnxRuntime(repository, "cpu")
    grpc = TritonRuntime(repository, server.grpc_url, "grpc", timeout_seconds=30)
    http = TritonRuntime(repository, server.http_url, "http", timeout_seconds=30)
    x = np.random.default_rng(3).normal(size=(6, 1, ROI, ROI, ROI)).astype(np.float32)
    want = local.infer("conv", {"image": x}).outputs["prob"]
    np.testing.assert_allclose(grpc.infer("conv", {"image": x}).outputs["prob"], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(http.infer("conv", {"image": x}).outputs["prob"], want, rtol=1e-5, atol=1e-6)
    volume = np.random.default_rng(4).normal(size=(20, 40, 27)).astype(np.float32)
    window = SlidingWindow(overlap=0.5, batch_size=4)
    remote = sliding_window_inference(grpc, "conv", volume, window)
    np.testing.assert_allclose(remote.output, sliding_window_inference(local, "conv", volume, window).output,
                               rtol=1e-5, atol=1e-6)
    assert grpc.is_ready("conv", 1)


def test_new_version_not_loaded_is_model_not_ready_then_served(repo: Path, add_version, triton_factory  # type: ignore[no-untyped-def] # noqa: F811
                                                               ) -> None:
    server = triton_factory(repo, wait_models=("pointwise",))
    runtime = TritonRuntime(ModelRepository(repo), server.grpc_url, "grpc", timeout_seconds=30)
    x = np.ones((1, 1, ROI, ROI, ROI), dtype=np.float32)
    assert runtime.infer("pointwise", {"x": x}).version == 1
    add_version(repo, "pointwise", 2)  # exported, not yet on the server
    with pytest.raises(ModelNotReady, match="version 2"):
        runtime.infer("pointwise", {"x": x})
    server.regenerate()
    from peers import wait_for

    wait_for(lambda: server.model_ready("pointwise", 2), timeout=60, what="pointwise version 2 loaded by polling")
    result = runtime.infer("pointwise", {"x": x})
    assert result.version == 2
    assert result.outputs["y"][0, 0, 0, 0, 0] == pytest.approx(1 / (1 + np.exp(1.0)), rel=1e-5)


def test_server_stopped_mid_run_then_restarted(repo: Path, triton_factory) -> None:  # type: ignore[no-untyped-def] # noqa: F811
    server = triton_factory(repo, wait_models=("conv",))
    repository = ModelRepository(repo)
    runtime = TritonRuntime(repository, server.grpc_url, "grpc", timeout_seconds=10)
    volume = np.random.default_rng(5).normal(size=(48, 64, 64)).astype(np.float32)
    window = SlidingWindow(overlap=0.5, batch_size=1)  # many requests: the stop lands mid-volume
    first_patch = threading.Event()
    original = runtime._run_batch

    def run_batch(spec, version, inputs):  # type: ignore[no-untyped-def]
        out = original(spec, version, inputs)
        if not first_patch.is_set():
            first_patch.set()
            server.stop()  # the server goes away after the first patch has been answered
        return out

    runtime._run_batch = run_batch  # type: ignore[method-assign]
    with pytest.raises(RetryLater):
        sliding_window_inference(runtime, "conv", volume, window)
    assert first_patch.is_set()
    server.start(wait_models=("conv",))
    runtime._run_batch = original  # type: ignore[method-assign]
    result = sliding_window_inference(runtime, "conv", volume, window)  # the retried job
    expected = sliding_window_inference(OnnxRuntime(repository, "cpu"), "conv", volume, window)
    np.testing.assert_allclose(result.output, expected.output, rtol=1e-5, atol=1e-6)


def test_shipped_lung_network_same_through_triton(triton_factory) -> None:  # type: ignore[no-untyped-def] # noqa: F811
    """The committed lung_nodules model: Triton (gRPC) and in-process ONNX Runtime agree on a CT crop."""
    from models.lung_nodules.inference import input_spec
    from models.lung_nodules.preprocess import to_network_grid
    from training.lung_nodules.phantom import PhantomConfig, generate_phantom

    root = Path(__file__).resolve().parents[3] / "triton_repo"
    repository = ModelRepository(root)
    classifier = "lung_nodule_classifier" in repository.models()
    server = triton_factory(root, wait_models=("lung_nodules", "lung_nodule_classifier") if classifier
                            else ("lung_nodules",))
    phantom = generate_phantom(77, PhantomConfig(max_matrix=256, z_extent_mm=60.0, nodules=(2, 2)))
    image, _ = to_network_grid(phantom.hu, phantom.grid, input_spec(repository.spec("lung_nodules")))
    image = image[:, 40:200, 40:220]
    local = sliding_window_inference(OnnxRuntime(repository, "cpu"), "lung_nodules", image)
    remote = sliding_window_inference(TritonRuntime(repository, server.grpc_url, "grpc", 120), "lung_nodules", image)
    assert remote.version == local.version == repository.resolve_version("lung_nodules")
    np.testing.assert_allclose(remote.output, local.output, rtol=1e-4, atol=1e-5)
    if classifier:  # the candidate classifier, at the version the latest lung card names (every version served)
        from models.lung_nodules.classifier import classifier_logits
        from models.lung_nodules.inference import classifier_of

        ref = classifier_of(OnnxRuntime(repository, "cpu"), "lung_nodules", local.version)
        assert ref is not None
        centres = np.argwhere(local.output[0] > 0.5)[::50][:40]  # 40 points: two batches and a part
        spec = input_spec(repository.spec("lung_nodules"))
        want = classifier_logits(OnnxRuntime(repository, "cpu"), ref, image, centres, spec)
        got = classifier_logits(TritonRuntime(repository, server.grpc_url, "grpc", 120), ref, image, centres, spec)
        assert len(want) == len(centres) >= 10
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_shared_memory_same_results_survives_a_restart_and_is_removed(repo: Path, triton_factory  # type: ignore[no-untyped-def] # noqa: F811
                                                                       ) -> None:
    server = triton_factory(repo, wait_models=("conv",))
    repository = ModelRepository(repo)
    local = OnnxRuntime(repository, "cpu")
    grpc = TritonRuntime(repository, server.grpc_url, "grpc", timeout_seconds=30, shared_memory=True)
    http = TritonRuntime(repository, server.http_url, "http", timeout_seconds=30, shared_memory=True)
    x = np.random.default_rng(6).normal(size=(6, 1, ROI, ROI, ROI)).astype(np.float32)  # 4 + a partial batch of 2
    want = local.infer("conv", {"image": x}).outputs["prob"]
    for runtime in (grpc, http):
        np.testing.assert_allclose(runtime.infer("conv", {"image": x}).outputs["prob"], want, rtol=1e-5, atol=1e-6)
    regions = [Path("/dev/shm", r.name) for r in grpc._regions.values()]
    assert len(regions) == 2 and all(p.exists() for p in regions)  # one input and one output region

    server.stop()
    server.start(wait_models=("conv",))  # the new server process knows none of our regions
    for attempt in range(2):  # the first call may see the broken connection (retried as a job would be)
        try:
            got = grpc.infer("conv", {"image": x}).outputs["prob"]
            break
        except RetryLater:
            assert attempt == 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    grpc.close()
    http.close()
    assert not any(p.exists() for p in regions)
