"""Second-stage features and scoring: a nodule in aerated lung against a vessel segment."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from models.errors import ModelError
from models.lung_nodules.blobs import DotMap, dot_filter
from models.lung_nodules.candidates import CandidateSettings, find_nodules
from models.lung_nodules.geometry import Grid
from models.lung_nodules.rescore import FEATURES, Rescorer, candidate_features

SHAPE = (60, 80, 120)


@pytest.fixture(scope="module")
def scene() -> dict:
    """1 mm grid: lung at -860 HU, a 6 mm-radius nodule at x=30 and a 2 mm-radius vessel along z at x=90;
    the 'network' fires on the whole nodule and on a 10 mm stretch of the vessel (higher peak)."""
    z, y, x = np.indices(SHAPE)
    hu = np.full(SHAPE, -860.0, dtype=np.float32)
    nodule = (z - 30) ** 2 + (y - 40) ** 2 + (x - 30) ** 2 <= 36
    vessel = (y - 40) ** 2 + (x - 90) ** 2 <= 4
    hu[nodule | vessel] = 40.0
    prob = np.zeros(SHAPE, dtype=np.float32)
    prob[nodule] = 0.97
    prob[vessel & (abs(z - 30) <= 5)] = 0.999
    return {"hu": hu, "prob": prob, "lung": np.ones(SHAPE, dtype=bool), "grid": Grid.axial(SHAPE, (1.0, 1.0, 1.0))}


def _features(scene: dict, dots: DotMap | None = None) -> tuple[dict[str, float], dict[str, float]]:
    labels, _ = ndimage.label(scene["prob"] >= 0.5)
    objs = ndimage.find_objects(labels)
    by_x = sorted(range(1, len(objs) + 1), key=lambda k: objs[k - 1][2].start)
    nod, ves = (candidate_features(scene["prob"], scene["hu"], scene["lung"], labels, k, objs[k - 1], dots)
                for k in by_x)
    return nod, ves


def test_features_tell_a_nodule_from_a_vessel_segment(scene: dict) -> None:
    nodule, vessel = _features(scene)
    assert set(nodule) == set(FEATURES) - {"blob", "classifier_logit"}  # the candidate search sets those two
    assert nodule["dot"] == vessel["dot"] == 0.0  # no dot map given
    assert nodule["peak_logit"] == pytest.approx(math.log(0.97 / 0.03))
    assert nodule["log_volume"] == pytest.approx(math.log(int((scene["prob"][:, :, :60] >= 0.5).sum())))
    assert nodule["mean_hu"] == pytest.approx(40.0) and nodule["std_hu"] == pytest.approx(0.0)
    assert nodule["elongation"] < 0.1 and vessel["elongation"] > 0.8  # sphere vs a 10 x 4 mm rod
    assert nodule["shell_tissue"] == 0.0 and vessel["shell_tissue"] > 0.05  # the vessel leaves through the shell
    assert nodule["continuity"] == 0.0 and vessel["continuity"] > 0.5
    assert nodule["shell_wall"] == 0.0 and nodule["far_tissue"] == 0.0
    nodule, vessel = _features(scene, dot_filter(scene["hu"], scene["lung"], scene["grid"]))
    assert nodule["dot"] > vessel["dot"] + 1.0  # log scale: a blob answers the dot filter, a tube hardly


def _rescorer(**weights: float) -> Rescorer:
    names = tuple(weights)
    return Rescorer(names, (0.0,) * len(names), (1.0,) * len(names), tuple(weights.values()), 0.0)


def test_rescorer_scores_and_round_trips() -> None:
    r = _rescorer(elongation=-4.0, continuity=-2.0)
    assert r.score({"elongation": 0.0, "continuity": 0.0}) == pytest.approx(0.5)
    assert r.score({"elongation": 1.0, "continuity": 1.0}) == pytest.approx(1 / (1 + math.exp(6.0)))
    assert Rescorer.from_mapping(r.to_mapping()) == r
    assert r.score({"elongation": -1e6, "continuity": 0.0}) == pytest.approx(1.0)  # no overflow


@pytest.mark.parametrize("raw, message", [
    ({"features": ["colour"], "mean": [0], "scale": [1], "weights": [1], "bias": 0}, "unknown features"),
    ({"features": ["elongation"], "mean": [0, 1], "scale": [1], "weights": [1], "bias": 0}, "same non-zero length"),
    ({"features": ["elongation"], "mean": [0], "scale": [0], "weights": [1], "bias": 0}, "scale must be > 0"),
    ({"features": ["elongation"], "mean": [0], "scale": [1], "weights": ["x"], "bias": 0}, "bad section"),
    ({"features": ["elongation"], "mean": [0], "scale": [1], "weights": [1]}, "bad section"),
])
def test_malformed_rescore_sections_are_refused(raw: dict, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        Rescorer.from_mapping(raw)


def test_find_nodules_ranks_by_the_second_stage(scene: dict) -> None:
    settings = CandidateSettings(min_score=0.0, refine_hu=False)
    args = (scene["prob"], scene["grid"], scene["hu"], scene["grid"], scene["lung"], settings)
    by_peak = find_nodules(*args)
    assert [round(n.centre_mm[0]) for n in by_peak] == [90, 30]  # the vessel has the higher peak
    assert by_peak[0].features == {}  # no features without net_hu
    rescored = find_nodules(*args, scene["hu"], _rescorer(elongation=-4.0, continuity=-2.0))
    assert [round(n.centre_mm[0]) for n in rescored] == [30, 90]
    assert rescored[0].peak_probability == pytest.approx(0.97) and rescored[0].score > 0.4 > rescored[1].score
    assert set(rescored[0].features) == set(FEATURES) - {"classifier_logit"}  # no classifier given
    cut = find_nodules(*args[:-1], CandidateSettings(min_score=0.3, refine_hu=False), scene["hu"],
                       _rescorer(elongation=-4.0, continuity=-2.0))
    assert [round(n.centre_mm[0]) for n in cut] == [30]  # min_score applies to the second-stage score
    with pytest.raises(ValueError, match="needs net_hu"):
        find_nodules(*args, None, _rescorer(elongation=-1.0))


def test_the_second_stage_reorders_the_networks_candidates_and_promotes_no_speck(scene: dict) -> None:
    prob = scene["prob"].copy()
    for x in (10, 50, 70, 110):  # single-voxel specks the network hardly saw
        prob[10, 10, x] = 0.6
    settings = CandidateSettings(min_score=0.0, refine_hu=False, min_diameter_mm=0.0, max_candidates=2)
    favours_specks = _rescorer(log_volume=-10.0)
    found = find_nodules(prob, scene["grid"], scene["hu"], scene["grid"], scene["lung"], settings, scene["hu"],
                         favours_specks)
    assert sorted(round(n.centre_mm[0]) for n in found) == [30, 90]  # the two highest peaks, then rescored
