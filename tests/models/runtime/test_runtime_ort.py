"""ONNX Runtime in-process: session reuse, input checks, batching, hot reload, sliding window."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.runtime import (
    InferenceFailed,
    ModelConfigError,
    ModelRepository,
    RuntimeSettings,
    SlidingWindow,
    gaussian_weights,
    make_runtime,
    sliding_window_inference,
)
from models.runtime.ort import OnnxRuntime, providers_for
from models.runtime.sliding_window import window_starts
from tiny_onnx import ROI


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_pointwise_output_and_session_reused(repo: Path) -> None:
    runtime = make_runtime(RuntimeSettings(model_repository=repo, device="cpu"))
    assert isinstance(runtime, OnnxRuntime)
    x = np.random.default_rng(0).normal(size=(3, 1, ROI, ROI, ROI)).astype(np.float32)
    first = runtime.infer("pointwise", {"x": x})
    second = runtime.infer("pointwise", {"x": x[:1]})
    assert first.version == 1
    np.testing.assert_allclose(first.outputs["y"], _sigmoid(2 * x + 0.5), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(second.outputs["y"], first.outputs["y"][:1])
    assert runtime.sessions.created == 1


def test_batch_larger_than_max_batch_size_is_split(repo: Path) -> None:
    runtime = OnnxRuntime(ModelRepository(repo), "cpu")
    x = np.random.default_rng(1).normal(size=(7, 1, ROI, ROI, ROI)).astype(np.float32)
    whole = runtime.infer("conv", {"image": x}).outputs["prob"]
    one_by_one = np.concatenate([runtime.infer("conv", {"image": x[i:i + 1]}).outputs["prob"] for i in range(7)])
    assert whole.shape == (7, 2, ROI, ROI, ROI)
    np.testing.assert_allclose(whole, one_by_one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("inputs, message", [
    ({"x": np.zeros((1, 1, ROI, ROI, ROI), dtype=np.float64)}, "dtype float64"),
    ({"x": np.zeros((1, 1, ROI, ROI, 8), dtype=np.float32)}, "shape"),
    ({"x": np.zeros((1, ROI, ROI, ROI), dtype=np.float32)}, "rank 5"),
    ({"image": np.zeros((1, 1, ROI, ROI, ROI), dtype=np.float32)}, "declares"),
])
def test_bad_inputs_name_the_rule(repo: Path, inputs: dict[str, np.ndarray], message: str) -> None:
    runtime = OnnxRuntime(ModelRepository(repo), "cpu")
    with pytest.raises(InferenceFailed, match=message):
        runtime.infer("pointwise", inputs)


def test_hot_reload_picks_up_a_new_version_without_restart(repo: Path, add_version) -> None:  # type: ignore[no-untyped-def]
    runtime = OnnxRuntime(ModelRepository(repo), "cpu")
    x = np.ones((1, 1, ROI, ROI, ROI), dtype=np.float32)
    assert runtime.infer("pointwise", {"x": x}).outputs["y"][0, 0, 0, 0, 0] == pytest.approx(_sigmoid(2.5))
    add_version(repo, "pointwise", 2)
    result = runtime.infer("pointwise", {"x": x})
    assert result.version == 2
    assert result.outputs["y"][0, 0, 0, 0, 0] == pytest.approx(_sigmoid(-1.0))
    assert runtime.infer("pointwise", {"x": x}, version=1).version == 1
    assert runtime.sessions.created == 2


def test_cuda_without_provider_is_refused() -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA")
    with pytest.raises(ModelConfigError, match="cuda"):
        providers_for("cuda")
    assert providers_for("auto") == ["CPUExecutionProvider"]


def test_window_starts_cover_the_axis() -> None:
    assert window_starts(16, 16, 0.5) == [0]
    assert window_starts(40, 16, 0.5) == [0, 8, 16, 24]
    starts = window_starts(37, 16, 0.25)
    assert starts[0] == 0 and starts[-1] == 21 and all(b - a <= 12 for a, b in zip(starts, starts[1:]))


def test_gaussian_weights_peak_in_the_centre() -> None:
    w = gaussian_weights((16, 16, 16), 0.125)
    assert w.max() == pytest.approx(1.0) and w.min() >= 1e-3
    assert w[8, 8, 8] > w[5, 8, 8] > w[3, 8, 8] > w[0, 0, 0] == pytest.approx(1e-3)


def test_sliding_window_equals_whole_volume_for_a_pointwise_model(repo: Path) -> None:
    runtime = OnnxRuntime(ModelRepository(repo), "cpu")
    volume = np.random.default_rng(2).normal(size=(21, 37, 30)).astype(np.float32)
    result = sliding_window_inference(runtime, "pointwise", volume, SlidingWindow(overlap=0.5, batch_size=3))
    assert result.output.shape == (1, 21, 37, 30)
    assert result.patches == 2 * 4 * 3  # starts (0, 5) x (0, 8, 16, 21) x (0, 8, 14)
    np.testing.assert_allclose(result.output[0], _sigmoid(2 * volume + 0.5), rtol=1e-5, atol=1e-6)


def test_requests_in_flight_blend_in_patch_order(repo: Path) -> None:
    runtime = OnnxRuntime(ModelRepository(repo), "cpu")
    volume = np.random.default_rng(5).normal(size=(20, 40, 27)).astype(np.float32)
    window = SlidingWindow(overlap=0.5, batch_size=2)
    runtime.requests_in_flight = 1
    one = sliding_window_inference(runtime, "conv", volume, window).output
    runtime.requests_in_flight = 3  # the same result, bit for bit
    np.testing.assert_array_equal(sliding_window_inference(runtime, "conv", volume, window).output, one)
    calls = 0
    infer = runtime.infer

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 4:
            raise InferenceFailed("request 4 failed")
        return infer(*args, **kwargs)

    runtime.infer = failing  # type: ignore[method-assign]
    with pytest.raises(InferenceFailed, match="request 4"):  # a request's failure is the volume's
        sliding_window_inference(runtime, "conv", volume, window)


def test_sliding_window_pads_a_small_volume(repo: Path) -> None:
    runtime = OnnxRuntime(ModelRepository(repo), "cpu")
    volume = np.full((5, 20, 9), 0.25, dtype=np.float32)
    out = sliding_window_inference(runtime, "conv", volume).output
    assert out.shape == (2, 5, 20, 9)
    assert np.all((out > 0) & (out < 1))


def test_sliding_window_rejects_wrong_channels(repo: Path) -> None:
    runtime = OnnxRuntime(ModelRepository(repo), "cpu")
    with pytest.raises(InferenceFailed, match="channel"):
        sliding_window_inference(runtime, "conv", np.zeros((2, 20, 20, 20), dtype=np.float32))


def test_settings_built_from_the_service_configuration(repo: Path) -> None:
    from aiws.config import RuntimeConfig

    settings = RuntimeSettings(**RuntimeConfig(model_repository=repo, device="cpu").model_dump())
    assert settings.backend == "onnxruntime" and settings.triton_protocol == "grpc"
    assert isinstance(make_runtime(settings), OnnxRuntime)
    with pytest.raises(ValueError, match="backend"):
        RuntimeSettings(model_repository=repo, backend="tensorrt")  # type: ignore[arg-type]
