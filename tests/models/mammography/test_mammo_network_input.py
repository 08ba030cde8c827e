"""The network's input is a property of the model version (issue 28): version 1 sees the display-window image,
a version whose card says ``network_input: breast_relative`` sees that image mapped to the breast's own air and
fat levels. The service reads it from the card per version; a card it cannot read that way is an error."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.errors import ModelError
from models.mammography.analysis import analyse_view
from models.mammography.inference import relative_input
from models.mammography.preprocess import REFERENCE_FAT, normalise
from models.runtime import RuntimeSettings, make_runtime
from training.mammography.phantom import to_working
from training.mammography.phantom_b import make_exam_b

REPO = Path(__file__).resolve().parents[3] / "triton_repo"
MODEL = "mammo_detector"


def _repo_with_cards(tmp_path: Path, inputs: dict[int, str | None]) -> Path:
    """A repository of version 1's files under several version numbers, each card with the given input."""
    for version, value in inputs.items():
        folder = tmp_path / MODEL / str(version)
        shutil.copytree(REPO / MODEL / "1", folder)
        card = json.loads((folder / "model_card.json").read_text())
        card.pop("network_input", None)
        if value is not None:
            card["network_input"] = value
        (folder / "model_card.json").write_text(json.dumps(card))
    shutil.copy(REPO / MODEL / "config.pbtxt", tmp_path / MODEL / "config.pbtxt")
    return tmp_path


def test_each_version_states_its_own_input(tmp_path: Path) -> None:
    repo = _repo_with_cards(tmp_path, {1: None, 2: "breast_relative", 3: "window", 4: "raw"})
    with make_runtime(RuntimeSettings(model_repository=repo, device="cpu")) as runtime:
        assert relative_input(runtime, MODEL, 1) is False  # no key: version 1's window input
        assert relative_input(runtime, MODEL, 2) is True
        assert relative_input(runtime, MODEL, 3) is False
        with pytest.raises(ModelError, match="network_input 'raw'"):
            relative_input(runtime, MODEL, 4)


def test_the_shipped_version_1_keeps_the_window_input() -> None:
    with make_runtime(RuntimeSettings(model_repository=REPO, device="cpu")) as runtime:
        assert relative_input(runtime, MODEL, 1) is False


@pytest.fixture(scope="module")
def view_b():
    exam = make_exam_b(10004)  # a vendor scale and window of its own
    return to_working(exam.views[("L", "CC")]), exam.window


@pytest.mark.parametrize("relative", [False, True])
def test_the_network_sees_the_input_of_its_version(view_b, relative: bool) -> None:
    pv, window = view_b
    seen: list[np.ndarray] = []

    def predict(x: np.ndarray) -> np.ndarray:
        seen.append(x[0, 0, : pv.image.shape[0], : pv.image.shape[1]].copy())
        return np.full((1, 3, *x.shape[2:]), -10.0, np.float32)

    a = analyse_view(pv.image, "L", "CC", window, predict, relative_input=relative)
    x = seen[0]
    fat = float(np.percentile(x[pv.breast & ~pv.dense & ~pv.pectoral], 50))
    if relative:
        assert abs(fat - REFERENCE_FAT) < 0.03  # the breast's own fat at the reference level
    else:
        np.testing.assert_allclose(x, normalise(pv.image, *window), rtol=0, atol=1e-6)
    assert a.candidates == ()  # the stand-in network found nothing either way
