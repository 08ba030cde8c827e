"""Promote and roll back a model version: the policy written into config.pbtxt, both runtimes follow it.

Always on COPIES of a repository (tmp_path): the shipped triton_repo/ configurations are never changed.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "models" / "runtime"))
sys.path.insert(0, str(ROOT / "tests"))

from models.runtime import ModelConfigError, ModelNotFound, ModelRepository  # noqa: E402
from models.runtime.model_config import read_model_config  # noqa: E402
from models.runtime.ort import OnnxRuntime  # noqa: E402
from models.runtime.promote import (  # noqa: E402
    active_version,
    roll_back,
    rollback_target,
    set_active_version,
)
from tiny_onnx import ROI, conv_onnx, make_repository, pointwise_onnx  # noqa: E402
from triton_server import triton_factory  # noqa: E402,F401 - fixture


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """``conv`` versions 1, 2, 3 (different weights) and ``pointwise`` version 1."""
    root = make_repository(tmp_path / "repo")
    for version in (2, 3):
        (root / "conv" / str(version)).mkdir()
        conv_onnx(root / "conv" / str(version) / "model.onnx", seed=version)
    return root


def _image() -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(7).normal(size=(1, 1, ROI, ROI, ROI)).astype(np.float32)}


def test_promote_writes_a_specific_policy_and_the_local_runtime_follows(repo: Path) -> None:
    repository = ModelRepository(repo)
    reference = {v: OnnxRuntime(repository, "cpu").infer("conv", _image(), version=v).outputs["prob"]
                 for v in (1, 2, 3)}
    assert not np.allclose(reference[1], reference[3])  # the versions really differ
    spec_before = repository.spec("conv")
    with OnnxRuntime(repository, "cpu") as runtime:  # ONE runtime across the change: no restart
        assert runtime.infer("conv", _image()).version == 3  # latest
        change = set_active_version(repository, "conv", 1)
        assert (change.old, change.new, change.kind) == (3, 1, "promote")
        spec = read_model_config(repo / "conv" / "config.pbtxt")
        assert (spec.version_policy.kind, spec.version_policy.versions) == ("specific", (1,))
        result = runtime.infer("conv", _image())
        assert result.version == 1
        np.testing.assert_array_equal(result.outputs["prob"], reference[1])
        # everything but the policy is kept
        assert spec == type(spec)(**{**spec_before.__dict__, "version_policy": spec.version_policy})
        assert [p.name for p in (repo / "conv").iterdir() if p.name.endswith(".tmp")] == []
        # a newly published version is NOT served until it is promoted
        (repo / "conv" / "4").mkdir()
        conv_onnx(repo / "conv" / "4" / "model.onnx", seed=4)
        assert runtime.infer("conv", _image()).version == 1
        set_active_version(repository, "conv", 4)
        assert runtime.infer("conv", _image()).version == 4


def test_rollback_returns_to_the_previously_active_versions_in_order(repo: Path) -> None:
    repository = ModelRepository(repo)
    history = [set_active_version(repository, "conv", 2), set_active_version(repository, "conv", 1)]
    assert [(c.old, c.new) for c in history] == [(3, 2), (2, 1)]

    def replay() -> list[tuple[str, int | None, int]]:
        return [(c.kind, c.old, c.new) for c in history]

    history.append(roll_back(repository, "conv", replay()))
    assert (history[-1].kind, history[-1].old, history[-1].new) == ("rollback", 1, 2)
    assert active_version(repository, "conv") == 2
    history.append(roll_back(repository, "conv", replay()))
    assert (history[-1].old, history[-1].new) == (2, 3)
    assert OnnxRuntime(repository, "cpu").infer("conv", _image()).version == 3
    with pytest.raises(ModelNotFound, match="no earlier active version"):
        roll_back(repository, "conv", replay())


def test_rollback_target_replays_the_history() -> None:
    assert rollback_target([]) is None
    assert rollback_target([("promote", 1, 2)]) == 1
    assert rollback_target([("promote", 1, 2), ("promote", 2, 5), ("rollback", 5, 2)]) == 1
    assert rollback_target([("promote", None, 2)]) is None


def test_a_missing_version_is_refused_and_nothing_is_written(repo: Path) -> None:
    before = (repo / "conv" / "config.pbtxt").read_bytes()
    with pytest.raises(ModelNotFound, match="version 9 is not in the repository"):
        set_active_version(ModelRepository(repo), "conv", 9)
    (repo / "conv" / "5").mkdir()  # a folder without model.onnx is no version
    with pytest.raises(ModelNotFound, match="version 5"):
        set_active_version(ModelRepository(repo), "conv", 5)
    with pytest.raises(ModelNotFound, match="nosuch"):
        set_active_version(ModelRepository(repo), "nosuch", 1)
    assert (repo / "conv" / "config.pbtxt").read_bytes() == before


def test_a_version_whose_onnx_does_not_match_the_config_is_refused(repo: Path) -> None:
    (repo / "conv" / "6").mkdir()
    pointwise_onnx(repo / "conv" / "6" / "model.onnx")  # input 'x', output 'y': not conv's image -> prob
    before = (repo / "conv" / "config.pbtxt").read_bytes()
    with pytest.raises(ModelConfigError, match="does not match the ONNX file") as info:
        set_active_version(ModelRepository(repo), "conv", 6)
    assert "'prob'" in str(info.value)
    assert (repo / "conv" / "config.pbtxt").read_bytes() == before
    assert active_version(ModelRepository(repo), "conv") == 6  # 'latest' still picks it: the reason to pin


def test_shipped_repository_copy_pins_lung_nodules(tmp_path: Path) -> None:
    copy = tmp_path / "triton_repo"
    shutil.copytree(ROOT / "triton_repo", copy)
    shipped = (ROOT / "triton_repo" / "lung_nodules" / "config.pbtxt").read_bytes()
    repository = ModelRepository(copy)
    latest = active_version(repository, "lung_nodules")
    change = set_active_version(repository, "lung_nodules", 5)
    assert (change.old, change.new) == (latest, 5)
    assert repository.resolve_version("lung_nodules") == 5
    before, after = ModelRepository(ROOT / "triton_repo").spec("lung_nodules"), repository.spec("lung_nodules")
    assert (after.inputs, after.outputs, after.parameters, after.max_batch_size, after.dynamic_batching) == \
        (before.inputs, before.outputs, before.parameters, before.max_batch_size, before.dynamic_batching)
    assert (ROOT / "triton_repo" / "lung_nodules" / "config.pbtxt").read_bytes() == shipped


@pytest.mark.slow
def test_triton_serves_the_promoted_version_then_the_rolled_back_one(  # type: ignore[no-untyped-def]
        repo: Path, triton_factory) -> None:  # noqa: F811
    from models.runtime.triton import TritonRuntime
    from peers import wait_for
    from scripts.triton_local import sync_configs

    repository = ModelRepository(repo)
    reference = {v: OnnxRuntime(repository, "cpu").infer("conv", _image(), version=v).outputs["prob"]
                 for v in (1, 3)}
    server = triton_factory(repo, wait_models=("conv",))
    twins = server.workdir / "models"
    with TritonRuntime(repository, server.grpc_url) as triton:
        assert triton.infer("conv", _image()).version == 3
        assert triton.load_model("conv") is False  # this server polls its repository: explicit loads refused
        history = [set_active_version(repository, "conv", 1)]
        assert sync_configs(repo, twins) == ["conv"]  # the twins' config.pbtxt are copies
        wait_for(lambda: server.model_ready("conv", 1) and not server.model_ready("conv", 3), timeout=60,
                 interval=0.5, what="Triton serving conv version 1 only")
        result = triton.infer("conv", _image())
        assert result.version == 1
        np.testing.assert_allclose(result.outputs["prob"], reference[1], rtol=1e-5, atol=1e-6)

        history.append(roll_back(repository, "conv", [(c.kind, c.old, c.new) for c in history]))
        assert sync_configs(repo, twins) == ["conv"]
        wait_for(lambda: server.model_ready("conv", 3) and not server.model_ready("conv", 1), timeout=60,
                 interval=0.5, what="Triton serving conv version 3 again")
        result = triton.infer("conv", _image())
        assert result.version == 3
        np.testing.assert_allclose(result.outputs["prob"], reference[3], rtol=1e-5, atol=1e-6)
        assert OnnxRuntime(repository, "cpu").infer("conv", _image()).version == 3


@pytest.mark.slow
def test_results_name_the_active_version_without_a_restart(tmp_path: Path) -> None:
    """One pipeline object (as in a worker): promote, and its next study's SR names the promoted version."""
    from pydicom import dcmread

    from models.coronary_ct.network import MODEL_NAME
    from models.coronary_ct.pipeline import CoronaryCalciumPipeline
    from models.pipeline import PipelineRequest
    from models.runtime import RuntimeSettings, make_runtime
    from training.coronary_ct.dicom import write_series
    from training.coronary_ct.phantom import make_phantom

    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "triton_repo" / MODEL_NAME, repo / MODEL_NAME)
    newest = max(int(p.name) for p in (repo / MODEL_NAME).iterdir() if p.name.isdigit())
    shutil.copytree(repo / MODEL_NAME / "1", repo / MODEL_NAME / str(newest + 1))  # version 1's network, the newest
    files = tuple(write_series(make_phantom(10001), tmp_path / "in"))
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    pipeline = CoronaryCalciumPipeline(make_runtime(RuntimeSettings(model_repository=repo, device="cpu")))

    def versions_named(out: Path) -> set[str]:
        out.mkdir()
        result = pipeline.run(PipelineRequest(study_uid, {"s": files}, out, "2.25"))
        sr = dcmread(next(f.path for f in result.files if f.kind == "sr"))
        return {str(sr.SeriesDescription), str(sr.SoftwareVersions)}

    assert all(f"{MODEL_NAME} v{newest + 1}" in text for text in versions_named(tmp_path / "latest"))
    set_active_version(ModelRepository(repo), MODEL_NAME, 1)
    assert all(f"{MODEL_NAME} v1" in text for text in versions_named(tmp_path / "promoted"))


@pytest.mark.slow
def test_triton_in_explicit_mode_loads_the_promoted_version_on_request(repo: Path, tmp_path: Path) -> None:
    """Triton and the service sharing ONE repository (here the Python-backend twin folder, as a deployment
    mounts triton_repo): promote writes its config.pbtxt, load_model makes the server serve it at once."""
    import os
    import signal

    from models.runtime.triton import TritonRuntime
    from peers import free_port, wait_for
    from scripts.triton_local import ServerOptions, start_server
    from triton_server import TritonServer, triton_available

    if not triton_available():
        pytest.skip("no .venv-triton with nvidia-pytriton (run 'make setup')")
    options = ServerOptions(tmp_path / "triton", free_port(), free_port(), repo, model_control="explicit")
    proc = start_server(options)  # writes the twins into <workdir>/models and serves them
    shared = options.workdir / "models"
    probe = TritonServer(options.workdir, repo, options.grpc_port, options.http_port, proc)
    try:
        wait_for(lambda: probe._ready() and probe.model_ready("conv", 3), timeout=120, interval=0.5,
                 what="explicit-mode tritonserver with conv 3")
        repository = ModelRepository(shared)
        with TritonRuntime(repository, probe.grpc_url) as triton:
            set_active_version(repository, "conv", 1)
            assert probe.model_ready("conv", 3)  # explicit mode: nothing changes until asked
            assert triton.load_model("conv") is True
            assert probe.model_ready("conv", 1) and not probe.model_ready("conv", 3)  # at once, no polling
            assert triton.infer("conv", _image()).version == 1
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
