"""The sepsis plugin end to end: flat JSON, FHIR R4 Bundle and CSV agree; trend; risk model; errors."""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from plugins.errors import InvalidInput
from plugins.sepsis.models import SepsisObservation
from plugins.sepsis.plugin import SepsisPlugin
from tests_plugins_helpers import fhir_bundle, observation, run_doc

FLAT = {"ref": "Patient/p1", "time": "2024-03-01T10:00:00+00:00", "respiratory_rate": 23, "spo2": 93,
        "spo2_scale": 1, "on_oxygen": True, "systolic_bp": 98, "heart_rate": 112, "consciousness": "C",
        "temperature_c": 38.6, "gcs": 14, "pao2_fio2": 180, "on_respiratory_support": True, "platelets": 95,
        "bilirubin_mg_dl": 2.3, "map": 64, "vasopressors": {"noradrenaline": 0.08}, "creatinine_mg_dl": 2.1,
        "wbc": 15.2, "paco2": 30}


def _fhir_for(flat: dict[str, Any], temp_unit: str = "Cel", creat_umol: bool = False) -> dict[str, Any]:
    t = flat["time"]
    temp = flat["temperature_c"] if temp_unit == "Cel" else flat["temperature_c"] * 9 / 5 + 32
    creat = (flat["creatinine_mg_dl"] * 88.4, "umol/L", "14682-9") if creat_umol else \
        (flat["creatinine_mg_dl"], "mg/dL", "2160-0")
    obs = [
        observation("o1", "9279-1", t, flat["respiratory_rate"], "/min"),
        observation("o2", "59408-5", t, flat["spo2"], "%"),
        observation("o3", "3151-8", t, 2, "L/min"),
        {**observation("o4", "85354-9", t, None, ""), "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": flat["systolic_bp"], "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 60, "code": "mm[Hg]"}}]},
        observation("o5", "8867-4", t, flat["heart_rate"], "/min"),
        {**observation("o6", "67775-7", t, None, ""), "valueCodeableConcept": {"text": "new confusion"}},
        observation("o7", "8310-5", t, round(temp, 2), temp_unit if temp_unit == "Cel" else "[degF]"),
        {**observation("o8", "9269-2", t, None, ""), "valueInteger": flat["gcs"]},
        observation("o9", "50984-4", t, flat["pao2_fio2"], "mm[Hg]"),
        {**observation("o10", "on_respiratory_support", t, None, "", system="urn:aiws:plugin-input"),
         "valueBoolean": True},
        observation("o11", "777-3", t, flat["platelets"], "10*3/uL"),
        observation("o12", "1975-2", t, flat["bilirubin_mg_dl"], "mg/dL"),
        observation("o13", "8478-0", t, flat["map"], "mm[Hg]"),
        observation("o14", creat[2], t, round(creat[0], 4), creat[1]),
        observation("o15", "6690-2", t, flat["wbc"], "10*9/L"),
        observation("o16", "2019-8", t, flat["paco2"], "mm[Hg]"),
    ]
    pressor = {"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
               "subject": {"reference": "Patient/p1"},
               "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "C01CA03"}]},
               "dosageInstruction": [{"doseAndRate": [{"rateQuantity": {"value": 0.08, "code": "ug/kg/min"}}]}]}
    return fhir_bundle([{"resourceType": "Patient", "id": "p1"}, *obs, pressor])


def test_flat_and_fhir_give_the_same_result(sepsis: SepsisPlugin) -> None:
    flat = run_doc(sepsis, FLAT)
    assert run_doc(sepsis, _fhir_for(FLAT)) == flat
    assert run_doc(sepsis, _fhir_for(FLAT, temp_unit="[degF]", creat_umol=True)) == flat
    assert flat["news2"]["total"] == 2 + 2 + 2 + 2 + 2 + 3 + 1
    assert flat["sofa"]["total"] == 3 + 2 + 2 + 3 + 1 + 2
    assert flat["qsofa"]["positive"] is True and flat["sirs"]["count"] == 4


def test_output_names_version_rules_and_explanation(sepsis: SepsisPlugin) -> None:
    out = run_doc(sepsis, FLAT)
    assert out["plugin"] == "sepsis" and out["version"] == sepsis.version
    assert any("NEWS2" in r for r in out["rules"]) and any("sepsis_risk" in r for r in out["rules"])
    assert any(line.startswith("NEWS2 14") for line in out["explanation"])
    assert out["risk"]["status"] == "computed" and out["risk"]["variant"] == "vitals_labs"


def test_fhir_unknown_unit_is_refused_naming_the_resource(sepsis: SepsisPlugin) -> None:
    bundle = fhir_bundle([observation("bad", "2160-0", FLAT["time"], 1.2, "g/L")])
    with pytest.raises(InvalidInput) as err:
        run_doc(sepsis, bundle)
    assert err.value.problems[0].field == "Observation/bad.valueQuantity.code"
    assert "creatinine_mg_dl" in err.value.problems[0].rule


def test_fhir_bundle_that_is_not_r4_valid_is_refused(sepsis: SepsisPlugin) -> None:
    bad = fhir_bundle([{"resourceType": "Observation", "id": "x", "status": "final"}])  # Observation.code missing
    with pytest.raises(InvalidInput) as err:
        run_doc(sepsis, bad)
    assert err.value.problems[0].field.startswith("Bundle.entry[0].resource") and "code" in err.value.problems[0].field


@pytest.mark.parametrize(("change", "field"), [({"temperature_c": 98.6}, "temperature_c"),
                                               ({"consciousness": "X"}, "consciousness"),
                                               ({"heartrate": 80}, "heartrate"),
                                               ({"vasopressors": {"vasopressin": 0.03}}, "vasopressors.vasopressin"),
                                               ({"spo2_scale": 3}, "spo2_scale")])
def test_invalid_input_names_the_field(sepsis: SepsisPlugin, change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        run_doc(sepsis, {**FLAT, **change})
    assert [p.field for p in err.value.problems] == [field]


def test_missing_measurements_are_not_computed_never_guessed(sepsis: SepsisPlugin) -> None:
    out = run_doc(sepsis, {"respiratory_rate": 24, "heart_rate": 120})
    assert out["news2"]["total"] is None and set(out["news2"]["missing"]) == {
        "spo2", "on_oxygen", "systolic_bp", "consciousness", "temperature_c"}
    assert out["sofa"]["total"] is None and out["sofa"]["lower_bound"] == 0
    assert out["risk"]["status"] == "not computed" and out["risk"]["probability"] is None
    assert "temperature_c" in out["risk"]["missing"]


def test_risk_falls_back_to_vitals_variant_without_labs(sepsis: SepsisPlugin) -> None:
    vitals = {k: FLAT[k] for k in ("respiratory_rate", "spo2", "on_oxygen", "systolic_bp", "heart_rate",
                                   "consciousness", "temperature_c")}
    out = run_doc(sepsis, vitals)
    assert out["risk"]["variant"] == "vitals" and out["risk"]["probability"] > 0.5


def test_risk_contributions_add_up_to_the_logit(sepsis: SepsisPlugin) -> None:
    obs = SepsisObservation.model_validate({"respiratory_rate": 21, "spo2": 95, "on_oxygen": False, "systolic_bp": 108,
                                            "heart_rate": 98, "gcs": 15, "temperature_c": 38.2, "wbc": 11,
                                            "platelets": 160, "creatinine_mg_dl": 1.1, "bilirubin_mg_dl": 0.9})
    risk = sepsis.model.predict(obs, top=50)
    assert 0.05 < risk.probability < 0.95  # away from the saturated ends, where 4 decimals lose the logit
    variant = sepsis.model.variants[0]
    logit = math.log(risk.probability / (1 - risk.probability))
    assert sum(c.log_odds for c in risk.top_features) + variant.intercept == pytest.approx(logit, abs=0.01)
    assert risk.top_features == sorted(risk.top_features, key=lambda c: -c.log_odds)


def test_risk_is_higher_for_a_septic_picture(sepsis: SepsisPlugin) -> None:
    well = run_doc(sepsis, {"respiratory_rate": 14, "spo2": 98, "on_oxygen": False, "systolic_bp": 128,
                            "heart_rate": 72, "consciousness": "A", "temperature_c": 36.8})
    ill = run_doc(sepsis, FLAT)
    assert well["risk"]["probability"] < 0.05 < 0.5 < ill["risk"]["probability"]


def _series(news_rr: list[int]) -> dict[str, Any]:
    base = {k: FLAT[k] for k in ("spo2", "on_oxygen", "systolic_bp", "heart_rate", "consciousness", "temperature_c",
                                 "gcs", "pao2_fio2", "on_respiratory_support", "platelets", "bilirubin_mg_dl", "map",
                                 "creatinine_mg_dl", "wbc")}
    points = [{**base, "time": f"2024-03-01T{6 + 2 * i:02d}:00:00+00:00", "respiratory_rate": rr}
              for i, rr in enumerate(news_rr)]
    return {**points[-1], "history": points[:-1]}


def test_trend_rising_and_falling(sepsis: SepsisPlugin) -> None:
    rising = run_doc(sepsis, _series([14, 18, 22, 26]))["trend"]
    assert rising["news2"]["direction"] == "rising" and rising["news2"]["change"] == 3
    assert [p["news2"] for p in rising["points"]] == [12, 12, 14, 15]
    assert rising["hours"] == 6 and rising["news2"]["slope_per_hour"] > 0
    falling = run_doc(sepsis, _series([26, 22, 18, 14]))["trend"]
    assert falling["news2"]["direction"] == "falling" and falling["probability"]["change"] < 0
    assert run_doc(sepsis, _series([18, 19]))["trend"]["news2"]["direction"] == "stable"


def test_sofa_rise_of_two_is_flagged(sepsis: SepsisPlugin) -> None:
    first = {**FLAT, "time": "2024-03-01T02:00:00+00:00", "platelets": 200, "creatinine_mg_dl": 1.0}
    first.pop("ref")
    out = run_doc(sepsis, {**FLAT, "history": [first]})
    assert out["trend"]["sofa"]["change"] == 4 and out["trend"]["sofa_rise_ge_2"] is True


def test_series_needs_distinct_earlier_times(sepsis: SepsisPlugin) -> None:
    later = {**FLAT, "time": "2024-03-01T12:00:00+00:00"}
    later.pop("ref")
    with pytest.raises(InvalidInput) as err:
        run_doc(sepsis, {**FLAT, "history": [later]})
    assert err.value.problems[0].field == "history[0].time"


def test_csv_rows_of_one_ref_form_a_series(sepsis: SepsisPlugin) -> None:
    rows = ["ref,time,respiratory_rate,spo2,on_oxygen,systolic_bp,heart_rate,consciousness,temperature_c,"
            "vasopressors.noradrenaline,map"]
    rows.append("a,2024-03-01T06:00:00+00:00,14,97,false,125,80,A,37.0,,75")
    rows.append("a,2024-03-01T10:00:00+00:00,26,92,true,95,118,A,38.9,0.2,60")
    rows.append(",,18,96,false,120,95,A,37.5,,")
    out = run_doc(sepsis, "\n".join(rows) + "\n", "text/csv")
    assert len(out) == 2
    single, series = out
    assert single["ref"] is None and single["news2"]["total"] == 1 and single["trend"] is None
    assert series["ref"] == "a" and series["trend"]["news2"]["direction"] == "rising"
    assert series["sofa"]["components"][3]["points"] == 4  # noradrenaline 0.2 µg/kg/min
    as_json = run_doc(sepsis, {"ref": "a", "time": "2024-03-01T10:00:00+00:00", "respiratory_rate": 26, "spo2": 92,
                               "on_oxygen": True, "systolic_bp": 95, "heart_rate": 118, "consciousness": "A",
                               "temperature_c": 38.9, "vasopressors": {"noradrenaline": 0.2}, "map": 60,
                               "history": [{"time": "2024-03-01T06:00:00+00:00", "respiratory_rate": 14, "spo2": 97,
                                            "on_oxygen": False, "systolic_bp": 125, "heart_rate": 80,
                                            "consciousness": "A", "temperature_c": 37.0, "map": 75}]})
    assert as_json == series


def test_csv_error_names_row_and_column(sepsis: SepsisPlugin) -> None:
    with pytest.raises(InvalidInput) as err:
        run_doc(sepsis, "heart_rate,temperature_c\n80,37\n90,hot\n", "csv")
    assert err.value.problems[0].field == "[1].temperature_c"


@pytest.mark.slow
def test_committed_model_reproduces_its_model_card(sepsis: SepsisPlugin) -> None:
    """The JSON model served by the plugin gives, on the regenerated held-out split, the AUROC written
    in its model card; and the plugin's per-record probabilities equal the vectorised training ones."""
    from sklearn.metrics import roc_auc_score

    from plugins.sepsis.risk import DEFAULT_MODEL
    from training.sepsis.cohort import CohortSpec, generate, split_patients
    from training.sepsis.train import _columns, predict_variant

    doc = json.loads(DEFAULT_MODEL.read_text())
    spec = CohortSpec(**doc["training"]["cohort"])
    cohort = generate(spec)
    test = split_patients(cohort, doc["training"]["test_fraction"], spec.seed)
    cols = _columns(cohort, test)
    y = cohort["label"][test]
    variant = doc["variants"][0]
    p = predict_variant(variant, cols)
    assert roc_auc_score(y, p) == pytest.approx(doc["evaluation"][variant["id"]]["auroc"], abs=1e-4)
    rng = np.random.default_rng(0)
    keys = ("respiratory_rate", "spo2", "systolic_bp", "heart_rate", "temperature_c", "wbc", "platelets",
            "creatinine_mg_dl", "bilirubin_mg_dl")
    for i in rng.choice(len(y), size=200, replace=False):
        rec = {k: float(cols[k][i]) for k in keys} | {"on_oxygen": bool(cols["on_oxygen"][i]),
                                                      "gcs": int(cols["gcs"][i])}
        served = sepsis.model.predict(SepsisObservation.model_validate(rec)).probability
        assert served == pytest.approx(p[i], abs=1e-4)


def test_fhir_series_with_validity_windows(sepsis: SepsisPlugin) -> None:
    t0, t1 = "2024-03-01T02:00:00+00:00", "2024-03-01T08:00:00+00:00"  # 6 h apart
    bundle = fhir_bundle([
        observation("rr0", "9279-1", t0, 14, "/min"), observation("hr0", "8867-4", t0, 80, "/min"),
        observation("plt", "777-3", t0, 90, "10*3/uL"),
        observation("rr1", "9279-1", t1, 26, "/min"), observation("sbp1", "8480-6", t1, 95, "mm[Hg]"),
        {**observation("scale", "spo2_scale", t1, None, "", system="urn:aiws:plugin-input"), "valueInteger": 2},
        observation("sat", "59408-5", t1, 90, "%"),
    ])
    out = run_doc(sepsis, bundle)
    assert out["time"] == "2024-03-01T08:00:00Z" and out["ref"] == "Patient/p1"
    comps = {c["parameter"]: c for c in out["news2"]["components"]}
    assert comps["heart_rate"]["status"] == "not computed"          # 6 h old vital: outside its 4 h window
    assert comps["spo2"]["points"] == 0 and "scale 2" in comps["spo2"]["rule"]
    sofa = {c["parameter"]: c for c in out["sofa"]["components"]}
    assert sofa["coagulation"]["points"] == 2                        # 6 h old platelets: inside 24 h
    assert [p["time"] for p in out["trend"]["points"]] == ["2024-03-01T02:00:00Z", "2024-03-01T08:00:00Z"]


def test_fhir_unknown_aiws_code_is_refused(sepsis: SepsisPlugin) -> None:
    bundle = fhir_bundle([{**observation("x", "heart_rat", FLAT["time"], 80, "/min", system="urn:aiws:plugin-input")}])
    with pytest.raises(InvalidInput) as err:
        run_doc(sepsis, bundle)
    assert err.value.problems[0].field == "Observation/x.code"
