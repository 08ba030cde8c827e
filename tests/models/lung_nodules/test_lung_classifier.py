"""The candidate classifier's input (two cubes around a candidate), its runtime call, and its feature."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from models.errors import ModelError
from models.lung_nodules.candidates import CandidateSettings, find_nodules
from models.lung_nodules.classifier import ClassifierRef, candidate_patches, classifier_logits, cube, patch_size
from models.lung_nodules.geometry import Grid
from models.lung_nodules.preprocess import InputSpec
from models.lung_nodules.rescore import Rescorer
from models.runtime.ort import OnnxRuntime
from models.runtime.repository import ModelRepository


def test_a_cube_is_centred_on_its_voxel_and_filled_outside() -> None:
    image = np.arange(20 * 21 * 22, dtype=np.float32).reshape(20, 21, 22)
    inner = cube(image, (10, 10, 11), 8)
    np.testing.assert_array_equal(inner, image[6:14, 6:14, 7:15])
    assert inner[4, 4, 4] == image[10, 10, 11]  # the centre voxel sits at size // 2
    corner = cube(image, (0, 1, 2), 8, fill=-1.0)
    np.testing.assert_array_equal(corner[4:, 3:, 2:], image[0:4, 0:5, 0:6])
    assert (corner[:4] == -1.0).all() and (corner[:, :3] == -1.0).all() and (corner[:, :, :2] == -1.0).all()
    assert (cube(image, (100, 100, 100), 4, fill=0.5) == 0.5).all()


def test_the_coarse_cube_averages_blocks_of_twice_the_span() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((40, 40, 40)).astype(np.float32)
    coarse = cube(image, (20, 21, 19), 8, stride=2)
    fine = image[12:28, 13:29, 11:27]  # 16 voxels around the centre
    expected = fine.reshape(8, 2, 8, 2, 8, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(coarse, expected, rtol=1e-6)
    patches = candidate_patches(image, np.array([[20.2, 20.6, 18.8]]), size=8)  # rounded to (20, 21, 19)
    assert patches.shape == (1, 2, 8, 8, 8) and patches.dtype == np.float32
    np.testing.assert_allclose(patches[0, 1], expected, rtol=1e-6)
    np.testing.assert_array_equal(patches[0, 0], image[16:24, 17:25, 15:23])


def _classifier_repo(root: Path, size: int, spacing: str = "1,1,1") -> ModelRepository:
    """A classifier whose logit is the mean of its fine cube, in a real repository layout."""
    x = helper.make_tensor_value_info("patches", TensorProto.FLOAT, ["batch", 2, size, size, size])
    y = helper.make_tensor_value_info("nodule_logit", TensorProto.FLOAT, ["batch", 1])
    starts = helper.make_tensor("starts", TensorProto.INT64, [1], [0])
    ends = helper.make_tensor("ends", TensorProto.INT64, [1], [1])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [0, -1])
    nodes = [helper.make_node("Slice", ["patches", "starts", "ends", "axes"], ["fine"]),
             helper.make_node("Reshape", ["fine", "shape"], ["flat"]),
             helper.make_node("ReduceMean", ["flat"], ["nodule_logit"], axes=[1], keepdims=1)]
    graph = helper.make_graph(nodes, "mean", [x], [y], [starts, ends, axes, shape])
    (root / "lung_nodule_classifier" / "2").mkdir(parents=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              str(root / "lung_nodule_classifier" / "2" / "model.onnx"))
    (root / "lung_nodule_classifier" / "config.pbtxt").write_text(f"""
name: "lung_nodule_classifier"
platform: "onnxruntime_onnx"
max_batch_size: 4
version_policy {{ all {{ }} }}
input {{ name: "patches" data_type: TYPE_FP32 dims: [2, {size}, {size}, {size}] }}
output {{ name: "nodule_logit" data_type: TYPE_FP32 dims: [1] }}
parameters {{ key: "spacing_mm" value {{ string_value: "{spacing}" }} }}
parameters {{ key: "hu_window" value {{ string_value: "-1000,400" }} }}
""")
    return ModelRepository(root)


def test_logits_come_from_the_version_named_through_the_runtime(tmp_path: Path) -> None:
    runtime = OnnxRuntime(_classifier_repo(tmp_path, 8), device="cpu")
    ref = ClassifierRef("lung_nodule_classifier", 2)
    image = np.zeros((30, 30, 30), dtype=np.float32)
    image[10:14, 10:14, 10:14] = 1.0
    centres = np.array([[12, 12, 12], [25, 25, 25], [12, 12, 16], [3, 3, 3], [12, 12, 12], [20, 5, 5]])
    logits = classifier_logits(runtime, ref, image, centres, InputSpec())  # 6 candidates: two batches of 4
    expected = [candidate_patches(image, centres, 8)[i, 0].mean() for i in range(len(centres))]
    np.testing.assert_allclose(logits, expected, rtol=1e-6)
    assert logits[0] == pytest.approx(64 / 512) and logits[1] == 0.0
    assert patch_size(runtime, ref, InputSpec()) == 8
    assert classifier_logits(runtime, ref, image, np.zeros((0, 3)), InputSpec()).shape == (0,)


def test_a_classifier_of_another_grid_is_refused(tmp_path: Path) -> None:
    runtime = OnnxRuntime(_classifier_repo(tmp_path, 8, spacing="2,2,2"), device="cpu")
    with pytest.raises(ModelError, match="differ from the network's"):
        patch_size(runtime, ClassifierRef("lung_nodule_classifier", 2), InputSpec())


@pytest.mark.parametrize("raw", [{}, {"model": "lung_nodule_classifier"}, {"model": "x", "version": 0},
                                 {"model": "x", "version": "two"}])
def test_malformed_classifier_entries_are_refused(raw: dict) -> None:
    with pytest.raises(ModelError, match="rescore.classifier"):
        ClassifierRef.from_mapping(raw)


def test_every_candidate_gets_the_logit_at_its_centre_and_the_second_stage_ranks_by_it() -> None:
    shape = (40, 40, 60)
    grid = Grid.axial(shape, (1.0, 1.0, 1.0))
    z, y, x = np.indices(shape)
    hu = np.full(shape, -850.0, dtype=np.float32)
    prob = np.zeros(shape, dtype=np.float32)
    for cx, peak in ((15, 0.95), (45, 0.7)):  # two 6 mm blobs; the network prefers the first
        ball = (z - 20) ** 2 + (y - 20) ** 2 + (x - cx) ** 2 <= 9
        hu[ball], prob[ball] = 30.0, peak
    seen: list[np.ndarray] = []

    def classify(centres: np.ndarray) -> np.ndarray:
        seen.append(centres)
        return centres[:, 2] / 10.0  # the classifier prefers the second (x = 45)

    stage = Rescorer(("classifier_logit",), (0.0,), (1.0,), (1.0,), 0.0)
    lung = np.ones(shape, dtype=bool)
    found = find_nodules(prob, grid, hu, grid, lung, CandidateSettings(min_score=0.0), hu, stage, classify=classify)
    assert len(seen) == 1 and len(seen[0]) == 2  # one call for the scan
    assert [round(n.centre_mm[0]) for n in found] == [45, 15]
    assert [n.features["classifier_logit"] for n in found] == pytest.approx([4.5, 1.5])
    assert found[0].score == pytest.approx(1 / (1 + np.exp(-4.5)))
    without = find_nodules(prob, grid, hu, grid, lung, CandidateSettings(min_score=0.0), hu)
    assert [round(n.centre_mm[0]) for n in without] == [15, 45]
    assert all("classifier_logit" not in n.features for n in without)
    with pytest.raises(ValueError, match="needs the candidate classifier"):
        find_nodules(prob, grid, hu, grid, lung, CandidateSettings(), hu, stage)
