"""The phantom's ground-truth Lung-RADS follows the v2022 juxtapleural rule from the nodule's KNOWN shape.

Lung-RADS v2022 (ACR; Christensen 2024, CHEST 165:738): a solid juxtapleural nodule < 10 mm with ALL benign
features (smooth margins; oval, lentiform or triangular shape; attached to the pleura) is category 2; a round
one keeps its size category (solid baseline: 6 to < 8 mm -> 3, 8 to < 15 mm -> 4A).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from models.lung_nodules.candidates import Nodule
from models.lung_nodules.lungrads import JuxtapleuralFeatures, NoduleType, PleuralShape
from models.lung_nodules.shape import Location, juxtapleural_features
from training.lung_nodules.dataset import main as dataset_main
from training.lung_nodules.export import LIMITATIONS, REWORDED_LIMITATIONS, run_from_version
from training.lung_nodules.metrics import detection_record
from training.lung_nodules.nodules import Kind, NoduleShape, pleural_shape, truth
from training.lung_nodules.phantom import PhantomConfig, generate_phantom

SHIPPED = Path(__file__).resolve().parents[3] / "triton_repo" / "lung_nodules"
JUXTA = PhantomConfig(max_matrix=200, z_extent_mm=80.0, nodules=(3, 3), kind_weights=(0, 0, 0, 1),
                      diameter_mm=(6.0, 9.5), slice_mm=(0.6, 1.25))
LUNG_Z = (-100.0, 100.0)


def _juxta(semi_axes: tuple[float, float, float]) -> dict:
    return truth(NoduleShape(Kind.JUXTAPLEURAL, np.zeros(3), semi_axes, 0.0, 30.0), 1, LUNG_Z)


@pytest.mark.parametrize(("semi_axes", "shape", "category"), [
    ((4.5, 3.0, 3.5), "oval", "2"),  # 7.5 mm, shortest/longest 0.67, middle/longest 0.78
    ((4.5, 3.0, 4.0), "lentiform", "2"),  # middle/longest 0.89: a lens
    ((4.0, 3.6, 3.8), "round", "3"),  # 7.6 mm round: its size category (6 to < 8 mm -> 3)
    ((4.0, 3.4, 3.8), "round", "3"),  # shortest/longest exactly 0.85: round
    ((4.0, 3.39, 3.8), "lentiform", "2"),  # just under 0.85: not round
    ((5.2, 4.7, 5.0), "round", "4A"),  # 9.9 mm round: 8 to < 15 mm -> 4A
    ((6.6, 3.3, 4.0), "oval", "2"),  # 9.9 mm oval: benign, < 10 mm
    ((6.6, 3.4, 4.0), "oval", "4A"),  # 10.0 mm: the juxtapleural rule stops at < 10 mm
])
def test_truth_category_follows_the_known_shape(semi_axes: tuple[float, float, float], shape: str,
                                                 category: str) -> None:
    record = _juxta(semi_axes)
    assert record["pleural_shape"] == shape
    assert record["lung_rads"] == category


def test_other_kinds_carry_no_pleural_shape_and_keep_the_size_table() -> None:
    record = truth(NoduleShape(Kind.SOLID, np.zeros(3), (4.5, 3.0, 3.5), 0.0, 30.0), 1, LUNG_Z)
    assert "pleural_shape" not in record and record["juxtapleural"] is False
    assert record["lung_rads"] == "3"  # 7.5 mm solid away from the pleura


def test_pleural_shape_sorts_the_axes() -> None:
    assert pleural_shape((3.0, 4.0, 3.6)) is PleuralShape.LENTIFORM  # b the longest: 3.0 / 4.0 = 0.75, not round
    assert pleural_shape((3.6, 3.5, 4.0)) is PleuralShape.ROUND  # z the longest: 3.5 / 4.0 = 0.875
    assert pleural_shape((4.0, 2.0, 2.4)) is PleuralShape.OVAL  # middle / longest 0.6


def test_default_config_keeps_every_seed_as_shipped() -> None:
    """Digests and truth taken before round_juxtapleural existed: the default draws nothing more."""
    small = PhantomConfig(max_matrix=200, z_extent_mm=70.0, nodules=(3, 4), diameter_mm=(5.0, 16.0))
    wall = PhantomConfig(max_matrix=200, z_extent_mm=80.0, nodules=(3, 3), kind_weights=(0, 0, 0, 1))
    expected = {(11, small): ("3c140d2f355ec118", [("ground-glass", 12.8, "2"), ("juxtapleural", 6.7, "2"),
                                                    ("part-solid", 5.2, "2")]),
                (5, wall): ("26ef21b2732c405a", [("juxtapleural", 4.8, "2"), ("juxtapleural", 14.0, "4A"),
                                                  ("juxtapleural", 8.9, "2")])}
    for (seed, config), (digest, nodules) in expected.items():
        p = generate_phantom(seed, config)
        got = hashlib.sha256(p.hu.tobytes() + p.labels.tobytes() + p.solid_labels.tobytes()).hexdigest()[:16]
        assert got == digest, seed
        assert [(n["kind"], n["mean_diameter_mm"], n["lung_rads"]) for n in p.nodules] == nodules


@pytest.fixture(scope="module")
def round_and_oval() -> dict[float, list]:
    return {fraction: [generate_phantom(5, PhantomConfig(**{**JUXTA.__dict__, "round_juxtapleural": fraction}))]
            for fraction in (0.0, 1.0)}


def test_round_juxtapleural_nodules_keep_their_size_category(round_and_oval: dict[float, list]) -> None:
    oval = [n for p in round_and_oval[0.0] for n in p.nodules]
    rounded = [n for p in round_and_oval[1.0] for n in p.nodules]
    assert len(oval) == 3 and len(rounded) == 3
    assert all(n["juxtapleural"] and n["pleural_shape"] in ("oval", "lentiform") for n in oval)
    assert all(n["lung_rads"] == "2" for n in oval)  # 6-9.5 mm, benign shape
    assert all(n["juxtapleural"] and n["pleural_shape"] == "round" for n in rounded)
    for n in rounded:
        assert n["lung_rads"] == ("3" if n["mean_diameter_mm"] < 8.0 else "4A"), n
        assert n["short_axis_mm"] >= 0.9 * n["long_axis_mm"]


def test_round_nodules_touch_the_pleura_and_measure_round(round_and_oval: dict[float, list]) -> None:
    """What the pipeline measures on the truth outline agrees with the shape the generator knows."""
    for fraction, phantoms in round_and_oval.items():
        for p in phantoms:
            for n in p.nodules:
                mask = p.labels == n["label"]
                shell = ndimage.binary_dilation(mask, iterations=2) & ~mask
                assert (shell & ~p.lung).any(), n  # reaches outside the lung: the pleura
                measured = juxtapleural_features(mask, p.spacing)
                assert measured.smooth is True
                assert (measured.shape is PleuralShape.ROUND) is (fraction == 1.0), (n, measured)


def test_round_fraction_is_checked() -> None:
    with pytest.raises(ValueError, match="round_juxtapleural"):
        PhantomConfig(round_juxtapleural=1.5)


def test_dataset_command_refuses_a_bad_round_fraction(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        dataset_main(["--out", str(tmp_path / "d"), "--seeds", "1", "--round-juxtapleural", "-0.1"])
    assert not (tmp_path / "d").exists()


def _nodule(features: JuxtapleuralFeatures) -> Nodule:
    return Nodule(0.9, (0.0, 0.0, 0.0), 7.6, 6.4, 7.0, 180.0, NoduleType.SOLID, 7.0, 30.0,
                  Location("right", "upper", True, features.benign, True, features), 10)


def test_a_detection_record_states_the_measured_features_and_their_category() -> None:
    rounded = detection_record(_nodule(JuxtapleuralFeatures(True, PleuralShape.ROUND)))
    assert (rounded["pleural_shape"], rounded["smooth"], rounded["lung_rads"]) == ("round", True, "3")
    uncertain = detection_record(_nodule(JuxtapleuralFeatures(None, PleuralShape.UNCERTAIN)))
    assert (uncertain["smooth"], uncertain["lung_rads"]) == (None, "3")
    benign = detection_record(_nodule(JuxtapleuralFeatures(True, PleuralShape.LENTIFORM)))
    assert benign["lung_rads"] == "2"


def test_cards_state_the_current_rules() -> None:
    text = " ".join(LIMITATIONS)
    assert "no 4X" not in text and "4X only for" in text and "round nodule" in text
    current = max(int(p.name) for p in SHIPPED.iterdir() if p.name.isdigit())
    card = json.loads((SHIPPED / str(current) / "model_card.json").read_text())
    assert not set(card["limitations"]) & set(REWORDED_LIMITATIONS)  # the shipped version's card corrected
    assert LIMITATIONS[2] in card["limitations"]


def test_a_run_derived_from_an_older_version_gets_todays_rule_wording(tmp_path: Path) -> None:
    source = json.loads((SHIPPED / "5" / "model_card.json").read_text())
    assert set(REWORDED_LIMITATIONS) <= set(source["limitations"])  # published with the earlier wording
    run_from_version(SHIPPED.parent, "lung_nodules", 5, tmp_path / "run")
    card = json.loads((tmp_path / "run" / "export" / "lung_nodules" / "1" / "model_card.json").read_text())
    assert not set(card["limitations"]) & set(REWORDED_LIMITATIONS)
    assert LIMITATIONS[1] in card["limitations"] and LIMITATIONS[2] in card["limitations"]
    assert card["limitations"][-1] == source["limitations"][-1]  # its own figures kept
