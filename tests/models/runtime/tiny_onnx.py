"""Tiny ONNX models (built with onnx.helper, no torch) in a real model repository layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROI = 16


def pointwise_onnx(path: Path, scale: float = 2.0, bias: float = 0.5) -> None:
    """y = sigmoid(scale * x + bias), x [N,1,16,16,16] -> y [N,1,16,16,16]: no spatial context."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, ROI, ROI, ROI])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, ROI, ROI, ROI])
    nodes = [helper.make_node("Mul", ["x", "s"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Sigmoid", ["a"], ["y"])]
    init = [numpy_helper.from_array(np.array(scale, dtype=np.float32), "s"),
            numpy_helper.from_array(np.array(bias, dtype=np.float32), "b")]
    graph = helper.make_graph(nodes, "pointwise", [x], [y], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def conv_onnx(path: Path, seed: int = 0) -> None:
    """A 3x3x3 convolution (1 -> 2 channels, padding 1) + sigmoid: output depends on neighbours."""
    rng = np.random.default_rng(seed)
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, ROI, ROI, ROI])
    y = helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["batch", 2, ROI, ROI, ROI])
    w = numpy_helper.from_array(rng.normal(0, 0.3, (2, 1, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.array([0.1, -0.2], dtype=np.float32), "b")
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["c"], pads=[1] * 6),
             helper.make_node("Sigmoid", ["c"], ["prob"])]
    graph = helper.make_graph(nodes, "conv", [x], [y], [w, b])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def config_pbtxt(name: str, input_name: str, output_name: str, out_channels: int, max_batch: int = 4) -> str:
    return f"""
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch}
input [ {{ name: "{input_name}" data_type: TYPE_FP32 dims: [ 1, {ROI}, {ROI}, {ROI} ] }} ]
output [ {{ name: "{output_name}" data_type: TYPE_FP32 dims: [ {out_channels}, {ROI}, {ROI}, {ROI} ] }} ]
version_policy: {{ latest: {{ num_versions: 1 }} }}
dynamic_batching {{ max_queue_delay_microseconds: 500 }}
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
parameters {{ key: "spacing_mm" value: {{ string_value: "1,1,1" }} }}
"""


def make_repository(root: Path) -> Path:
    """``pointwise`` (version 1) and ``conv`` (version 1) in a Triton layout under *root*."""
    for name, build, names in (("pointwise", pointwise_onnx, ("x", "y", 1)), ("conv", conv_onnx, ("image", "prob", 2))):
        (root / name / "1").mkdir(parents=True)
        build(root / name / "1" / "model.onnx")
        (root / name / "config.pbtxt").write_text(config_pbtxt(name, *names), encoding="utf-8")
    return root
