"""training.sepsis: the cohort is reproducible and labelled as documented; training writes a model
the plugin serves, with held-out AUROC and calibration in its model card."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from plugins.sepsis.plugin import SepsisPlugin
from tests_plugins_helpers import run_doc
from training.sepsis.cohort import CohortSpec, generate, split_patients
from training.sepsis.train import TrainConfig, train


def test_cohort_is_reproducible_and_labelled_before_onset() -> None:
    spec = CohortSpec(n_patients=300, seed=5)
    a, b = generate(spec), generate(spec)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert 0 < a["label"].mean() < 0.2
    for pid in np.unique(a["patient"][a["label"] == 1])[:20]:
        rows = a["patient"] == pid
        t, y = a["time_h"][rows], a["label"][rows]
        assert y[-1] == 1 and t[y == 1].max() - t[y == 1].min() <= spec.horizon_h  # the last 6 h up to onset
    test = split_patients(a, 0.3, spec.seed)
    assert not set(a["patient"][test]) & set(a["patient"][~test])


@pytest.mark.slow
def test_training_writes_a_served_model_with_its_card(tmp_path: Path) -> None:
    cfg = TrainConfig(cohort=CohortSpec(n_patients=900, seed=3), out_dir=tmp_path, compare_gbm=False)
    model = train(cfg)
    doc = json.loads((tmp_path / "sepsis_risk.json").read_text())
    assert doc == json.loads(json.dumps(model))
    ev = doc["evaluation"]["vitals_labs"]
    assert ev["auroc"] > 0.8 and ev["auroc"] > doc["reference_auroc"]["qsofa_total"]
    assert 0.6 < ev["calibration"]["slope"] < 1.5 and ev["calibration"]["ece"] < 0.03
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert f"AUROC **{ev['auroc']:.4f}**" in card and "SYNTHETIC" in card and "| bin | n |" in card
    plugin = SepsisPlugin(tmp_path / "sepsis_risk.json")
    out = run_doc(plugin, {"respiratory_rate": 26, "spo2": 92, "on_oxygen": True, "systolic_bp": 92,
                           "heart_rate": 120, "consciousness": "A", "temperature_c": 39.0})
    assert out["risk"]["variant"] == "vitals" and out["risk"]["probability"] > 0.3
