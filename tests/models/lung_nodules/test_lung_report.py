"""The lung findings in the SR: every rule that set or kept a category is a coded entry of the nodule's measurement
group (and so a legend line), the exam group states indication, Fleischner applicability and the scope (S modifier
not assessed, the one 4X feature measured); validated by dciodvfy and parsed by dcmqi tid1500reader."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from factories import make_ct_series
from imaging.bundle import BundleOptions, write_bundle
from imaging.results import ResultContext
from imaging.volume import load_volume
from models.lung_nodules.candidates import Nodule
from models.lung_nodules.compare import Comparison
from models.lung_nodules.context import StudyContext
from models.lung_nodules.fleischner import Indication, Risk
from models.lung_nodules.lungrads import (
    JuxtapleuralFeatures,
    NoduleForRads,
    NoduleStatus,
    NoduleType,
    PleuralShape,
    assess,
)
from models.lung_nodules.report import AssessedNodule, exam_finding, nodule_finding, nodule_segment, summary
from models.lung_nodules.shape import Location
from peers import dciodvfy_errors

TID1500READER = str(Path(sys.executable).parent / "tid1500reader")
CONTEXT = ResultContext(uid_root="1.2.826.0.1.3680043.10.1078", pipeline="lung_nodules", model_version="1.0.0-m6")
JUXTA = "category 2: juxtapleural, smooth, lentiform, < 10 mm"
SOLID_GROWTH = "category 4B: solid component new or growing, >= 4 mm"


def _assessed(index: int, ntype: NoduleType, mean: float, solid: float, status: NoduleStatus,
              features: JuxtapleuralFeatures | None, mask: np.ndarray) -> AssessedNodule:
    location = Location("right", "upper", features is not None, bool(features and features.benign), True, features)
    nodule = Nodule(score=0.9, centre_mm=(0.0, 0.0, 0.0), long_axis_mm=mean + 0.5, short_axis_mm=mean - 0.5,
                    mean_diameter_mm=mean, volume_mm3=float(mask.sum()), nodule_type=ntype, solid_diameter_mm=solid,
                    mean_hu=0.0, location=location, slice_index=3)
    growing = status is not NoduleStatus.BASELINE
    comparison = Comparison(status, 0 if growing else None, 365.0 if growing else 0.0, 0.0 if growing else None,
                            2000.0 if growing else None, 2.0 if growing and ntype is NoduleType.PART_SOLID else None)
    rads = assess(NoduleForRads(ntype, mean, solid, status, location.juxtapleural, location.benign_features, features))
    return AssessedNodule(nodule, comparison, rads.category, mask, index, rads.rules)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], list[AssessedNodule]]:
    root = tmp_path_factory.mktemp("lung_report")
    volume = load_volume(make_ct_series(root / "ct", n_slices=8, rows=48, cols=48))
    a, b = np.zeros(volume.shape, bool), np.zeros(volume.shape, bool)
    a[3, 10:16, 10:16] = True
    b[4, 30:38, 30:38] = True
    assessed = [
        _assessed(1, NoduleType.SOLID, 9.9, 9.9, NoduleStatus.BASELINE,
                  JuxtapleuralFeatures(True, PleuralShape.LENTIFORM), a),
        _assessed(2, NoduleType.PART_SOLID, 10.0, 5.0, NoduleStatus.GROWING, None, b),
    ]
    context = StudyContext(Indication.SCREENING, Risk.UNKNOWN, None)
    findings = [nodule_finding(x) for x in assessed] + [exam_finding(max(x.category for x in assessed), 2, True,
                                                                     context)]
    files = write_bundle(volume, findings, CONTEXT, root / "out", segments=[nodule_segment(x) for x in assessed],
                         options=BundleOptions(pdf=False))
    return {w.kind: w.path for w in files if w.kind in ("sr", "seg")}, assessed


def test_the_rules_are_in_the_nodules_groups_and_the_scope_in_the_exam_group(written) -> None:
    files, assessed = written
    assert [x.category.value for x in assessed] == ["2", "4B"]
    sr = dcmread(files["sr"])
    meanings = set()

    def walk(items) -> None:
        for item in items:
            for code in item.get("ConceptCodeSequence", []):
                meanings.add(code.CodeMeaning)
            walk(item.get("ContentSequence", []))

    walk(sr.ContentSequence)
    assert {JUXTA, SOLID_GROWTH, "not applied: screening exam (Lung-RADS only)", "screening",
            "not assessed: findings outside lung nodules are out of scope",
            "ground-glass volume doubling <= 1 year only"} <= meanings


def test_sr_is_valid(written) -> None:
    assert dciodvfy_errors(written[0]["sr"]) == []


@pytest.mark.skipif(not Path(TID1500READER).exists(), reason="dcmqi tid1500reader not installed")
def test_sr_parsed_by_dcmqi_tid1500reader(written, tmp_path: Path) -> None:
    out = tmp_path / "sr.json"
    run = subprocess.run([TID1500READER, "--inputDICOM", str(written[0]["sr"]), "--outputMetadata", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    groups = json.loads(out.read_text())["Measurements"]
    assert [g["TrackingIdentifier"] for g in groups] == ["nodule-1", "nodule-2", "exam"]
    evaluations = [e["conceptValue"]["CodeMeaning"] for e in groups[0].get("qualitativeEvaluations", [])]
    assert JUXTA in evaluations


def test_legend_lines_and_summary_state_the_rules(written) -> None:
    _, assessed = written
    assert assessed[0].legend_lines() == [assessed[0].label(), JUXTA] and "Lung-RADS 2" in assessed[0].label()
    context = StudyContext(Indication.INCIDENTAL, Risk.HIGH, 40)
    out = summary(assessed, max(x.category for x in assessed), "text", context)
    assert out["nodules"][1]["rules"] == [SOLID_GROWTH] and out["nodules"][1]["solid_growth_mm"] == 2.0
    assert out["indication"] == "incidental" and out["fleischner_applied"] is True
    assert "40" not in json.dumps(out)  # no patient data (age) in what the API shows
