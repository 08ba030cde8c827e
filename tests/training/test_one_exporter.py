"""One ONNX exporter and one ``config.pbtxt`` writer (issue 23): the four per-task exporters of the phantom training
loops go through :mod:`training.framework.export` and still write what they wrote before.

The expected ``config.pbtxt`` texts are pinned by their SHA-256, taken from the per-task writers as they were before
they were merged (each built its own ``ModelConfig``); the ONNX signatures (tensor names, element types, fixed and
symbolic dims, opset) are those the former per-task ``torch.onnx.export`` calls gave.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from models.runtime.model_config import parse_model_config
from training.cardiac_mri import export as cardiac
from training.coronary_ct import export as coronary
from training.lung_nodules import export as lung
from training.lung_nodules.config import ExportSettings
from training.mammography import export as mammo

REPO = Path(__file__).resolve().parents[2]
FLOAT = 1  # onnx.TensorProto.FLOAT

#: SHA-256 of each task's ``config.pbtxt`` text as its own writer produced it before the merge
BEFORE = {
    "cardiac": "84e27f442ee51fedbe50266170c696d5a5743c46c2a5fdcb1e07e6caec195122",
    "cardiac, 2 instances": "a1847787038d8564056da8acc2abc1828f2d51f43144f56017732844291faded",
    "coronary": "a49300c5c0a3c938d9747ee647763f303bc46d6b2668558697e5cdb0355e6353",
    "mammo": "267bc20dea6db340275544242acfb678efb3a6878b81605ca2ee4b3a8e2a1b72",
    "lung": "6780df294d8c84c5368c1e5bdc660720f5f45ada33b8283a380dd0923d0d60d0",
}


def _texts() -> dict[str, str]:
    return {"cardiac": cardiac.config_text(), "cardiac, 2 instances": cardiac.config_text(2),
            "coronary": coronary.config_text(), "mammo": mammo.config_text("mammography_detector"),
            "lung": lung.config_text(ExportSettings())}


def test_config_text_of_every_task_is_the_text_its_own_writer_wrote() -> None:
    texts = _texts()
    assert {k: hashlib.sha256(v.encode()).hexdigest() for k, v in texts.items()} == BEFORE
    lung_text = texts["lung"]
    assert "preferred_batch_size: 4" in lung_text and "num_versions: 1" in lung_text
    assert "preferred_batch_size" not in texts["cardiac"] and "count: 2" in texts["cardiac, 2 instances"]


@pytest.mark.parametrize(("text", "model"), [
    (lambda: cardiac.config_text(), "cardiac_cine_segmenter"),
    (lambda: coronary.config_text(), "coronary_calcium_labeller"),
    (lambda: mammo.config_text("mammo_detector"), "mammo_detector"),
    (lambda: lung.config_text(ExportSettings()), "lung_nodules"),
])
def test_config_text_fits_the_shipped_models_config(text: Any, model: str) -> None:
    shipped = parse_model_config((REPO / "triton_repo" / model / "config.pbtxt").read_text(), "shipped")
    ours = parse_model_config(text(), "ours")
    assert (ours.name, ours.max_batch_size, ours.inputs, ours.outputs, ours.parameters) == \
        (shipped.name, shipped.max_batch_size, shipped.inputs, shipped.outputs, shipped.parameters)


def _signature(path: Path) -> dict[str, Any]:
    import onnx

    model = onnx.load(str(path))

    def tensors(values: Any) -> list[tuple[str, int, list[int | str]]]:
        return [(v.name, v.type.tensor_type.elem_type,
                 [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]

    return {"inputs": tensors(model.graph.input), "outputs": tensors(model.graph.output),
            "opset": [o.version for o in model.opset_import]}


def test_onnx_signatures_are_those_of_the_former_exporters(tmp_path: Path) -> None:
    import torch

    from models.cardiac_mri.network import build_network as cardiac_net
    from models.coronary_ct.network import build_network as coronary_net
    from models.lung_nodules.network import NetworkConfig as LungNetwork
    from models.lung_nodules.network import build_network as lung_net
    from models.mammography.network import NetworkConfig as MammoNetwork
    from models.mammography.network import build_network as mammo_net
    from training.candidate import onnx_file

    torch.manual_seed(0)
    lung.onnx_from_network(lung_net(LungNetwork(channels=(4, 8), strides=(2,))), tmp_path / "lung.onnx",
                           ExportSettings(roi=(16, 16, 16)))
    mammo.onnx_file(mammo_net(MammoNetwork(channels=(4, 8), strides=(2,))), tmp_path / "mammo.onnx")
    onnx_file(cardiac_net((4, 8), 1), tmp_path / "cardiac.onnx", cardiac.SIGNATURE)
    onnx_file(coronary_net((4, 8)), tmp_path / "coronary.onnx", coronary.SIGNATURE)
    assert _signature(tmp_path / "lung.onnx") == {
        "inputs": [("ct", FLOAT, ["batch", 1, 16, 16, 16])], "outputs": [("nodule_prob", FLOAT, ["batch", 1, 16, 16, 16])],
        "opset": [17]}
    assert _signature(tmp_path / "mammo.onnx") == {
        "inputs": [("mammogram", FLOAT, ["batch", 1, 1, 512, 512])],
        "outputs": [("logits", FLOAT, ["batch", 3, 1, 512, 512])], "opset": [17]}
    assert _signature(tmp_path / "cardiac.onnx") == {
        "inputs": [("image", FLOAT, ["batch", 1, "height", "width"])],
        "outputs": [("logits", FLOAT, ["batch", 4, "height", "width"])], "opset": [17]}
    assert _signature(tmp_path / "coronary.onnx") == {
        "inputs": [("patches", FLOAT, ["batch", 3, 7, 24, 24])], "outputs": [("logits", FLOAT, ["batch", 5])],
        "opset": [17]}


@pytest.mark.parametrize("module", [cardiac, coronary])
def test_signature_and_export_spec_name_the_same_tensors(module: Any) -> None:
    spec = module.export_spec()
    sig = module.SIGNATURE
    assert (spec.model, spec.inputs[0].name, spec.outputs[0].name, spec.example_shapes[0]) == \
        (sig.model, sig.input_name, sig.output_name, sig.example_shape)


def test_only_the_framework_calls_torch_onnx_export_in_the_training_loops() -> None:
    files = [REPO / "training" / t / "export.py" for t in ("lung_nodules", "cardiac_mri", "coronary_ct", "mammography")]
    files += [REPO / "training" / "publish.py", REPO / "training" / "candidate.py"]
    for path in files:
        source = path.read_text()
        assert "torch.onnx.export(" not in source and "ModelConfig(" not in source, path
    assert "torch.onnx.export(" in (REPO / "training" / "framework" / "export.py").read_text()


def test_framework_onnx_file_takes_a_shipped_models_axis_names(tmp_path: Path) -> None:
    from models.cardiac_mri.network import build_network
    from training.framework.export import onnx_file

    spec, sig = cardiac.export_spec(), cardiac.SIGNATURE
    onnx_file(build_network((4, 8), 1), spec, tmp_path / "named.onnx",
              dynamic_axes={sig.input_name: sig.input_axes, sig.output_name: sig.output_axes})
    onnx_file(build_network((4, 8), 1), spec, tmp_path / "default.onnx")
    assert _signature(tmp_path / "named.onnx")["inputs"] == [("image", FLOAT, ["batch", 1, "height", "width"])]
    assert _signature(tmp_path / "default.onnx")["inputs"] == [("image", FLOAT, ["batch", 1, "image_1", "image_2"])]
