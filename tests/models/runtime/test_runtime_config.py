"""config.pbtxt parsing, the repository layout and the config-vs-ONNX check."""
from __future__ import annotations

from pathlib import Path

import pytest

from models.runtime import ModelConfigError, ModelNotFound, ModelRepository, parse_model_config, read_model_config
from models.runtime.validate import check_against_onnx
from tiny_onnx import ROI, config_pbtxt, pointwise_onnx


def test_parse_reads_names_dims_types_batch_and_parameters(repo: Path) -> None:
    spec = read_model_config(repo / "conv" / "config.pbtxt")
    assert spec.name == "conv"
    assert spec.platform == "onnxruntime_onnx"
    assert spec.max_batch_size == 4
    assert [(t.name, t.data_type, t.dims) for t in spec.inputs] == [("image", "FP32", (1, ROI, ROI, ROI))]
    assert [(t.name, t.dims) for t in spec.outputs] == [("prob", (2, ROI, ROI, ROI))]
    assert spec.full_shape(spec.inputs[0]) == (-1, 1, ROI, ROI, ROI)
    assert spec.version_policy.kind == "latest" and spec.version_policy.num_versions == 1
    assert spec.dynamic_batching and spec.instance_count == 1
    assert spec.float_list_parameter("spacing_mm") == (1.0, 1.0, 1.0)


def test_unknown_field_is_an_error_naming_the_file() -> None:
    with pytest.raises(ModelConfigError, match="bad.pbtxt"):
        parse_model_config('name: "m" max_batch_sise: 4', "bad.pbtxt")


def test_name_must_equal_folder(tmp_path: Path) -> None:
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "config.pbtxt").write_text(config_pbtxt("conv", "image", "prob", 2))
    with pytest.raises(ModelConfigError, match="differs from its folder"):
        read_model_config(folder / "config.pbtxt")


def test_missing_parameter_names_the_key(repo: Path) -> None:
    spec = read_model_config(repo / "conv" / "config.pbtxt")
    with pytest.raises(ModelConfigError, match="hu_window"):
        spec.parameter("hu_window")


def test_repository_versions_and_policy(repo: Path, add_version) -> None:  # type: ignore[no-untyped-def]
    repository = ModelRepository(repo)
    assert repository.models() == ["conv", "pointwise"]
    add_version(repo, "conv", 3)
    (repo / "conv" / "7").mkdir()  # no model file: not a version
    (repo / "conv" / "draft").mkdir()  # not numeric: ignored
    assert repository.versions("conv") == [1, 3]
    assert repository.resolve_version("conv") == 3
    assert repository.resolve_version("conv", 1) == 1
    assert repository.next_version("conv") == 8
    with pytest.raises(ModelNotFound, match="version 2"):
        repository.resolve_version("conv", 2)
    with pytest.raises(ModelNotFound, match="nothere"):
        repository.spec("nothere")


def test_specific_version_policy(repo: Path, add_version) -> None:  # type: ignore[no-untyped-def]
    add_version(repo, "pointwise", 2)
    text = (repo / "pointwise" / "config.pbtxt").read_text().replace(
        "version_policy: { latest: { num_versions: 1 } }", "version_policy: { specific: { versions: [1] } }")
    (repo / "pointwise" / "config.pbtxt").write_text(text)
    assert ModelRepository(repo).resolve_version("pointwise") == 1


def test_config_matches_its_onnx(repo: Path) -> None:
    for name in ("conv", "pointwise"):
        check_against_onnx(read_model_config(repo / name / "config.pbtxt"), repo / name / "1" / "model.onnx")


@pytest.mark.parametrize("change, message", [
    (('dims: [ 2, 16', 'dims: [ 3, 16'), "dim 1: config.pbtxt 3, ONNX 2"),
    (('name: "prob"', 'name: "probability"'), "not an ONNX output"),
    (('data_type: TYPE_FP32 dims: [ 1', 'data_type: TYPE_FP16 dims: [ 1'), "config.pbtxt FP16, ONNX FP32"),
    (("max_batch_size: 4", "max_batch_size: 0"), "rank"),
])
def test_config_mismatch_is_reported(repo: Path, change: tuple[str, str], message: str) -> None:
    path = repo / "conv" / "config.pbtxt"
    path.write_text(path.read_text().replace(*change))
    with pytest.raises(ModelConfigError, match=message):
        check_against_onnx(read_model_config(path), repo / "conv" / "1" / "model.onnx")


def test_fixed_batch_onnx_is_rejected_for_a_batched_config(tmp_path: Path) -> None:
    import onnx

    path = tmp_path / "m.onnx"
    pointwise_onnx(path)
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(path))
    spec = parse_model_config(config_pbtxt("m", "x", "y", 1))
    with pytest.raises(ModelConfigError, match="dynamic first"):
        check_against_onnx(spec, path)
