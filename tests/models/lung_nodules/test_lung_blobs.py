"""Dot-filter blob candidates: a small nodule answers, a vessel and a plate do not; blobs become candidates."""
from __future__ import annotations

import numpy as np
import pytest

from models.lung_nodules.blobs import _sym_eigenvalues, dot_filter
from models.lung_nodules.candidates import CandidateSettings, find_nodules
from models.lung_nodules.geometry import Grid
from models.lung_nodules.lungrads import NoduleType

SHAPE = (48, 64, 96)
LUNG_HU, TISSUE = -860.0, 40.0


def _ball(centre: tuple[float, float, float], radius: float) -> np.ndarray:
    z, y, x = np.indices(SHAPE)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius ** 2


@pytest.fixture(scope="module")
def scene() -> dict:
    """1 mm grid of aerated lung: a 5 mm nodule at x=20, a 3 mm vessel along z at x=50, a 2 mm plate at x=80."""
    z, y, x = np.indices(SHAPE)
    hu = np.full(SHAPE, LUNG_HU, dtype=np.float32)
    nodule = _ball((24, 32, 20), 2.5)
    hu[nodule] = TISSUE
    hu[(y - 32) ** 2 + (x - 50) ** 2 <= 1.5 ** 2] = TISSUE
    hu[abs(x - 80) <= 1] = TISSUE
    rng = np.random.default_rng(3)
    hu += rng.normal(0.0, 15.0, SHAPE).astype(np.float32)
    return {"hu": hu, "lung": np.ones(SHAPE, dtype=bool), "grid": Grid.axial(SHAPE, (1.0, 1.0, 1.0)),
            "nodule": nodule}


def test_closed_form_eigenvalues_match_numpy() -> None:
    rng = np.random.default_rng(0)
    m = rng.normal(size=(500, 3, 3))
    m = m + m.transpose(0, 2, 1)
    m[:5] = np.diag([2.0, 2.0, 2.0])  # repeated eigenvalues
    m[5:10] = np.diag([-1.0, 3.0, 3.0])
    got = np.stack(_sym_eigenvalues(m[:, 0, 0], m[:, 1, 1], m[:, 2, 2], m[:, 0, 1], m[:, 0, 2], m[:, 1, 2]), -1)
    np.testing.assert_allclose(got, np.linalg.eigvalsh(m), atol=1e-6)


def test_a_blob_answers_and_a_vessel_or_a_plate_does_not(scene: dict) -> None:
    dots = dot_filter(scene["hu"], scene["lung"], scene["grid"])
    value = np.zeros(SHAPE, np.float32)
    value[dots.box] = dots.value
    nodule = value[20:29, 28:37, 16:25].max()
    vessel = value[:, 28:37, 46:55].max()
    plate = value[:, :, 76:85].max()  # a fissure seen whole; a plate's corners would answer like a blob
    assert nodule > 5 * max(vessel, plate) and nodule > 50.0
    peaks = dots.peaks(scene["lung"], scene["grid"], count=3)
    assert np.linalg.norm(np.array(peaks[0][0]) - (24, 32, 20)) <= 1.0  # the strongest blob is the nodule
    assert peaks[0][2] in (1.0, 1.5)  # a 2.5 mm radius answers most at sigma ~ r / sqrt(3)
    assert [p[1] for p in peaks] == sorted((p[1] for p in peaks), reverse=True)
    mm = scene["grid"].to_mm(np.array([p[0] for p in peaks], dtype=float))
    assert all(np.linalg.norm(a - b) > 5.0 for i, a in enumerate(mm) for b in mm[i + 1:])
    assert dots.peaks(np.zeros(SHAPE, dtype=bool), scene["grid"], 3) == [] and dots.peaks(scene["lung"],
                                                                                          scene["grid"], 0) == []
    box = (slice(0, 4), slice(0, 4), slice(0, 4))
    assert dots.max_in(scene["nodule"][box], box) < nodule  # a box away from the nodule


def test_no_lung_gives_an_empty_map() -> None:
    hu = np.full((8, 8, 8), LUNG_HU, dtype=np.float32)
    dots = dot_filter(hu, np.zeros(hu.shape, dtype=bool), Grid.axial(hu.shape, (1.0, 1.0, 1.0)))
    assert dots.value.size == 0 and dots.max_in(np.ones((2, 2, 2), bool), (slice(0, 2),) * 3) == 0.0


def test_a_nodule_the_network_missed_is_found_and_measured_as_a_blob(scene: dict) -> None:
    prob = np.zeros(SHAPE, dtype=np.float32)  # the network saw nothing
    args = (prob, scene["grid"], scene["hu"], scene["grid"], scene["lung"])
    assert find_nodules(*args, CandidateSettings(min_score=0.0), scene["hu"]) == []  # no blobs asked for
    found = find_nodules(*args, CandidateSettings(min_score=0.0, blob_candidates=3), scene["hu"])
    nodule = min(found, key=lambda n: abs(n.centre_mm[0] - 20))
    assert abs(nodule.centre_mm[0] - 20) < 1.0 and abs(nodule.centre_mm[1] - 32) < 1.0
    assert 4.0 <= nodule.mean_diameter_mm <= 6.0 and nodule.nodule_type is NoduleType.SOLID  # outlined by HU
    assert nodule.features["blob"] == 1.0 and nodule.features["dot"] > 4.0 and nodule.peak_probability == 0.0


def test_a_blob_under_a_network_candidate_is_not_a_second_candidate(scene: dict) -> None:
    prob = np.where(scene["nodule"], 0.9, 0.0).astype(np.float32)  # the network found the nodule
    found = find_nodules(prob, scene["grid"], scene["hu"], scene["grid"], scene["lung"],
                         CandidateSettings(min_score=0.0, blob_candidates=3), scene["hu"])
    near = [n for n in found if np.linalg.norm(np.array(n.centre_mm) - (20, 32, 24)) < 4.0]
    assert len(near) == 1 and near[0].features["blob"] == 0.0 and near[0].peak_probability == pytest.approx(0.9)
    assert near[0].features["dot"] > 4.0  # the network's candidate carries the blob's response as a feature
