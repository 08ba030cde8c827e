"""Publishing versions into a model repository: atomic, numbered, compatible with config.pbtxt."""
from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from models.runtime import ModelConfigError, ModelRepository
from training.lung_nodules.config import ExportSettings
from training.lung_nodules.export import config_text
from training.publish import publish_version, render_card

ROI = (16, 16, 16)


def _onnx(path: Path) -> Path:
    x = helper.make_tensor_value_info("ct", TensorProto.FLOAT, ["b", 1, *ROI])
    y = helper.make_tensor_value_info("nodule_prob", TensorProto.FLOAT, ["b", 1, *ROI])
    graph = helper.make_graph([helper.make_node("Sigmoid", ["ct"], ["nodule_prob"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_versions_are_numbered_and_carded(tmp_path: Path) -> None:
    onnx_path = _onnx(tmp_path / "m.onnx")
    text = config_text(ExportSettings(roi=ROI))
    repo = tmp_path / "repo"
    repo.mkdir()
    card = {"intended_use": "test", "provenance": {"training_config_sha256": "0" * 64}}
    assert publish_version(repo, "lung_nodules", onnx_path, text, card) == 1
    assert publish_version(repo, "lung_nodules", onnx_path, text, card) == 2
    assert ModelRepository(repo).versions("lung_nodules") == [1, 2]
    saved = json.loads((repo / "lung_nodules" / "2" / "model_card.json").read_text())
    assert saved["version"] == 2 and saved["model"] == "lung_nodules"
    assert "# Model card: lung_nodules version 2" in (repo / "lung_nodules" / "2" / "model_card.md").read_text()
    assert not list(tmp_path.glob(".aiws-publish-*")), "staging folder left behind"
    with pytest.raises(ModelConfigError, match="already exists"):
        publish_version(repo, "lung_nodules", onnx_path, text, card, version=2)


def test_incompatible_configuration_is_refused(tmp_path: Path) -> None:
    onnx_path = _onnx(tmp_path / "m.onnx")
    repo = tmp_path / "repo"
    repo.mkdir()
    publish_version(repo, "lung_nodules", onnx_path, config_text(ExportSettings(roi=ROI)), {})
    other = config_text(ExportSettings(roi=ROI, spacing_mm=(2.0, 2.0, 2.0)))
    with pytest.raises(ModelConfigError, match="parameters"):
        publish_version(repo, "lung_nodules", onnx_path, other, {})
    with pytest.raises(ModelConfigError, match="dim 3: config.pbtxt 32, ONNX 16"):
        publish_version(repo, "lung_nodules", onnx_path, config_text(ExportSettings(roi=(16, 32, 16))), {})
    assert ModelRepository(repo).versions("lung_nodules") == [1]


def test_markdown_card_tables_the_bars_and_leaves_long_lists_to_the_json() -> None:
    scans = [{"name": f"lung_{i}", "found": []} for i in range(30)]
    card = {"model": "lung_nodules", "version": 3, "summary": "s",
            "metrics": {"evaluation": {"scans": scans, "froc": {"1.0": {"sensitivity": 0.95}},
                                       "bars": {"sensitivity_5mm_at_1fp": {"value": 0.95, "bar": 0.9, "met": True},
                                                "lung_rads_exam_agreement": {"value": 0.8, "bar": 0.9, "met": False}}}}}
    text = render_card(card)
    assert "| sensitivity_5mm_at_1fp | 0.95 | 0.9 | yes |" in text
    assert "| lung_rads_exam_agreement | 0.8 | 0.9 | no |" in text
    assert '"scans": "30 items, listed in model_card.json"' in text and "lung_29" not in text
    assert '"sensitivity": 0.95' in text


def test_every_shipped_card_markdown_is_its_json_rendered() -> None:
    """A card edited after publishing (a later evaluation, ``evaluation_added``) stays one document: the Markdown
    a viewer reads is exactly what its JSON renders to, with no machine paths in either."""
    root = Path(__file__).resolve().parents[3] / "triton_repo"
    cards = sorted(root.glob("*/*/model_card.json"))
    assert len(cards) >= 10
    for card_json in cards:
        card = json.loads(card_json.read_text(encoding="utf-8"))
        markdown = card_json.with_suffix(".md").read_text(encoding="utf-8")
        assert render_card(card).rstrip() == markdown.rstrip(), card_json.parent.relative_to(root)
        assert "/work/" not in markdown and "/home/" not in markdown and "/tmp/" not in markdown
    added = json.loads((root / "lung_nodules" / "6" / "model_card.json").read_text(encoding="utf-8"))
    assert "## Evaluation added " + added["evaluation_added"]["date"] in render_card(added)


def test_a_network_trained_on_both_families_says_so_in_its_limitations() -> None:
    from training.lung_nodules.export import LIMITATIONS, LIMITATIONS_BOTH_FAMILIES, limitations

    assert limitations({"a": [0, 1]}) == LIMITATIONS and limitations(None) == LIMITATIONS
    both = limitations({"a": [0, 1], "b": [0, 1]})
    assert both[:2] == LIMITATIONS_BOTH_FAMILIES and both[2:] == LIMITATIONS[2:]
    assert "perifissural nodules were in training" in both[1] and "No perifissural" in LIMITATIONS[1]
