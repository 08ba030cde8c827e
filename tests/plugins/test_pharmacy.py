"""Pharmacy review: Cockcroft–Gault in both units, every alert type, sorting, triage, knowledge base."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import pytest

from plugins.errors import InvalidInput, KnowledgeBaseError
from plugins.pharmacy.kb import SEVERITY_ORDER, KnowledgeBase
from plugins.pharmacy.models import Patient
from plugins.pharmacy.plugin import PharmacyPlugin
from plugins.pharmacy.renal import band, cockcroft_gault
from tests_plugins_helpers import fhir_bundle, observation, run_doc

ADULT = {"age": 60, "sex": "male", "weight_kg": 80, "height_cm": 180, "creatinine_mg_dl": 1.0}


def review(plugin: PharmacyPlugin, prescriptions: list[dict[str, Any]], allergies: list[str] | None = None,
           **patient: Any) -> Any:
    return run_doc(plugin, {"patient": {**ADULT, **patient}, "prescriptions": prescriptions,
                            "allergies": allergies or []})


def alerts_of(out: Any, kind: str) -> list[dict[str, Any]]:
    return [a for a in out["alerts"] if a["type"] == kind]


@pytest.mark.parametrize(("patient", "expected"), [
    ({"age": 60, "sex": "male", "weight_kg": 80, "creatinine_mg_dl": 1.0}, 88.9),           # 80·80/72
    ({"age": 60, "sex": "female", "weight_kg": 80, "creatinine_mg_dl": 1.0}, 75.6),         # ×0.85
    ({"age": 60, "sex": "male", "weight_kg": 80, "creatinine_umol_l": 88.4}, 89.0),         # 80·80·1.23/88.4
    ({"age": 60, "sex": "female", "weight_kg": 80, "creatinine_umol_l": 88.4}, 75.3),       # ×1.04
    ({"age": 82, "sex": "female", "weight_kg": 60, "height_cm": 160, "creatinine_mg_dl": 1.6}, 25.7),
])
def test_cockcroft_gault_both_units(patient: dict[str, Any], expected: float) -> None:
    assert cockcroft_gault(Patient.model_validate(patient)).creatinine_clearance_ml_min == expected


def test_obesity_uses_adjusted_body_weight() -> None:
    res = cockcroft_gault(Patient(age=50, sex="male", weight_kg=120, height_cm=170, creatinine_mg_dl=1.0))
    ibw = 50 + 2.3 * (170 / 2.54 - 60)
    adjusted = ibw + 0.4 * (120 - ibw)
    assert res.weight_kg_used == round(adjusted, 1) and res.weight_basis.startswith("adjusted")
    assert res.creatinine_clearance_ml_min == round(90 * adjusted / 72, 1)
    no_height = cockcroft_gault(Patient(age=50, sex="male", weight_kg=120, creatinine_mg_dl=1.0))
    assert no_height.weight_kg_used == 120 and "height missing" in no_height.weight_basis


@pytest.mark.parametrize(("patient", "reason"), [
    ({"age": 60, "sex": "male", "creatinine_mg_dl": 1.0}, "missing weight_kg"),
    ({"age": 16, "sex": "male", "weight_kg": 60, "creatinine_mg_dl": 0.8}, "adults"),
    ({"age": 60, "sex": "other", "weight_kg": 60, "creatinine_mg_dl": 0.8}, "female or male"),
    ({"age": 60, "sex": "female", "weight_kg": 60}, "missing creatinine"),
])
def test_clearance_not_computed(patient: dict[str, Any], reason: str) -> None:
    res = cockcroft_gault(Patient.model_validate(patient))
    assert res.status == "not computed" and res.creatinine_clearance_ml_min is None and reason in res.reason


@pytest.mark.parametrize(("crcl", "expected"), [(29.9, "severe (< 30)"), (30.0, "moderate (30-50)"),
                                                (49.9, "moderate (30-50)"), (50.0, "mild (50-80)"),
                                                (79.9, "mild (50-80)"), (80.0, "normal (>= 80)")])
def test_renal_bands(crcl: float, expected: str) -> None:
    assert band(crcl) == expected


def test_both_creatinine_units_is_refused(pharmacy: PharmacyPlugin) -> None:
    with pytest.raises(InvalidInput) as err:
        review(pharmacy, [{"drug": "paracetamol"}], creatinine_umol_l=80)
    assert err.value.problems[0].field == "patient.creatinine_umol_l"


@pytest.mark.parametrize(("rx", "field"), [({"drug": "x", "route": "nasal spray"}, "prescriptions[0].route"),
                                           ({"atc": "B01A"}, "prescriptions[0].atc"),
                                           ({"dose_mg": 5}, "prescriptions[0].drug"),
                                           ({"drug": "x", "dose_mg": -1}, "prescriptions[0].dose_mg")])
def test_invalid_prescription_names_the_field(pharmacy: PharmacyPlugin, rx: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        review(pharmacy, [rx])
    assert err.value.problems[0].field == field


def test_interaction_with_ansm_level(pharmacy: PharmacyPlugin) -> None:
    out = review(pharmacy, [{"drug": "warfarin", "atc": "B01AA03", "dose_mg": 5, "frequency_per_day": 1},
                            {"drug": "ibuprofen", "dose_mg": 400, "frequency_per_day": 3, "route": "oral"}])
    [alert] = alerts_of(out, "interaction")
    assert alert["severity"] == "high" and alert["level"] == "association déconseillée"
    assert alert["drugs"] == ["warfarin", "ibuprofen"]
    ci = review(pharmacy, [{"atc": "C10AA01"}, {"atc": "J01FA09"}])
    assert alerts_of(ci, "interaction")[0]["severity"] == "contraindicated"


@pytest.mark.parametrize(("dose", "freq", "severity"), [(1000, 4, None), (1000, 5, "moderate"),  # 5000 = 1.25 × max
                                                        (1000, 5.2, "high"), (1200, 2, "moderate")])
def test_dose_limits(pharmacy: PharmacyPlugin, dose: float, freq: float, severity: str | None) -> None:
    out = review(pharmacy, [{"drug": "paracetamol", "dose_mg": dose, "frequency_per_day": freq, "route": "iv"}])
    assert [a["severity"] for a in alerts_of(out, "dose")] == ([severity] if severity else [])


def test_weekly_methotrexate_given_daily(pharmacy: PharmacyPlugin) -> None:
    weekly = review(pharmacy, [{"atc": "L04AX03", "dose_mg": 15, "frequency_per_day": 1 / 7}])
    daily = review(pharmacy, [{"atc": "L04AX03", "dose_mg": 15, "frequency_per_day": 1}])
    assert alerts_of(weekly, "dose") == [] and "ONCE WEEKLY" in alerts_of(daily, "dose")[0]["message"]


def test_weight_based_dose_needs_weight(pharmacy: PharmacyPlugin) -> None:
    out = review(pharmacy, [{"drug": "gentamicin", "dose_mg": 640, "frequency_per_day": 1, "route": "iv"}])
    [alert] = alerts_of(out, "dose")
    assert alert["severity"] == "moderate" and "dose 8 mg/kg/day above the maximum 7 mg/kg/day" in alert["message"]
    patient = {k: v for k, v in ADULT.items() if k != "weight_kg"}
    no_weight = run_doc(pharmacy, {"patient": patient, "prescriptions": [{"drug": "gentamicin", "dose_mg": 640,
                                                                          "frequency_per_day": 1, "route": "iv"}]})
    assert any("weight_kg missing" in s for s in no_weight["checks_not_done"])


@pytest.mark.parametrize(("creatinine", "dose", "severity"), [(3.0, 500, "contraindicated"),   # CrCl 29.6
                                                              (2.2, 1000, "moderate"),          # CrCl 40.4, 2000/day
                                                              (2.2, 500, None),                 # 1000/day allowed
                                                              (1.9, 1000, None)])               # CrCl 46.8
def test_renal_adjustment(pharmacy: PharmacyPlugin, creatinine: float, dose: float, severity: str | None) -> None:
    out = review(pharmacy, [{"drug": "metformin", "dose_mg": dose, "frequency_per_day": 2}],
                 creatinine_mg_dl=creatinine)
    assert [a["severity"] for a in alerts_of(out, "renal")] == ([severity] if severity else [])


def test_renal_check_not_done_without_clearance(pharmacy: PharmacyPlugin) -> None:
    patient = {k: v for k, v in ADULT.items() if k != "creatinine_mg_dl"}
    out = run_doc(pharmacy, {"patient": patient, "prescriptions": [{"drug": "metformin", "dose_mg": 500}]})
    assert out["creatinine_clearance_ml_min"] is None
    assert any(s.startswith("renal check of metformin") for s in out["checks_not_done"])


def test_duplicates(pharmacy: PharmacyPlugin) -> None:
    same_class = review(pharmacy, [{"drug": "omeprazole"}, {"drug": "pantoprazole"}])
    assert [a["severity"] for a in alerts_of(same_class, "duplicate")] == ["moderate"]
    same_drug = review(pharmacy, [{"drug": "omeprazole"}, {"atc": "A02BC01"}])
    assert [a["severity"] for a in alerts_of(same_drug, "duplicate")] == ["high"]
    dapt = review(pharmacy, [{"drug": "aspirin low dose"}, {"drug": "clopidogrel"}])  # exempted group B01AC
    assert alerts_of(dapt, "duplicate") == []


@pytest.mark.parametrize(("allergy", "drug", "severity"), [("Penicillin", "amoxicillin", "contraindicated"),
                                                           ("penicillins (rash)", "ceftriaxone", "moderate"),
                                                           ("penicillin", "meropenem", "low"),
                                                           ("ciprofloxacin", "ciprofloxacin", "contraindicated"),
                                                           ("J01XA01", "vancomycin", "contraindicated"),
                                                           ("latex", "amoxicillin", None)])
def test_allergies(pharmacy: PharmacyPlugin, allergy: str, drug: str, severity: str | None) -> None:
    out = review(pharmacy, [{"drug": drug}], allergies=[allergy])
    assert [a["severity"] for a in alerts_of(out, "allergy")] == ([severity] if severity else [])


@pytest.mark.parametrize(("patient", "drug", "severity"), [({"conditions": ["Pregnancy, 12 weeks"]}, "warfarin",
                                                             "contraindicated"),
                                                           ({"conditions": ["asthma"]}, "propranolol", "contraindicated"),
                                                           ({"age": 65}, "diazepam", "moderate"),
                                                           ({"age": 64}, "diazepam", None),
                                                           ({"age": 30, "sex": "female"}, "valproate", "high"),
                                                           ({"age": 30}, "valproate", None)])
def test_contraindications(pharmacy: PharmacyPlugin, patient: dict[str, Any], drug: str, severity: str | None) -> None:
    out = review(pharmacy, [{"drug": drug}], **patient)
    assert [a["severity"] for a in alerts_of(out, "contraindication")] == ([severity] if severity else [])


def test_alerts_sorted_by_severity_and_triage(pharmacy: PharmacyPlugin) -> None:
    out = review(pharmacy, [{"drug": "warfarin"}, {"drug": "ibuprofen", "dose_mg": 400, "frequency_per_day": 3},
                            {"drug": "metformin", "dose_mg": 1000, "frequency_per_day": 2},
                            {"drug": "amoxicillin", "dose_mg": 1000, "frequency_per_day": 3}],
                 allergies=["penicillin"], age=82, sex="female", weight_kg=60, height_cm=160, creatinine_mg_dl=1.6)
    ranks = [SEVERITY_ORDER[a["severity"]] for a in out["alerts"]]
    assert ranks == sorted(ranks) and ranks[0] == 0
    assert {a["type"] for a in out["alerts"]} >= {"allergy", "renal", "interaction", "contraindication"}
    assert out["risk"]["level"] == "high" and out["risk"]["score"] >= 8 + 8 + 8
    assert out["triage_rank"] is None and out["kb_version"] == pharmacy.kb.version


def test_batch_triage_rank(pharmacy: PharmacyPlugin) -> None:
    quiet = {"patient": ADULT, "prescriptions": [{"drug": "paracetamol", "dose_mg": 1000, "frequency_per_day": 3}]}
    busy = {"patient": {**ADULT, "age": 85}, "prescriptions": [{"drug": "warfarin"}, {"drug": "ibuprofen"}]}
    middle = {"patient": ADULT, "prescriptions": [{"drug": "omeprazole"}, {"drug": "pantoprazole"}]}
    out = run_doc(pharmacy, [quiet, busy, middle])
    assert [o["triage_rank"] for o in out] == [3, 1, 2]
    assert out[0]["risk"]["level"] == "low" and out[1]["risk"]["level"] == "high"


def test_unknown_drug_is_listed_and_raises_the_risk(pharmacy: PharmacyPlugin) -> None:
    out = review(pharmacy, [{"drug": "unobtainium"}])
    assert out["unknown_drugs"] == ["unobtainium"] and out["risk"]["score"] == 1


def test_csv_batch_equals_json(pharmacy: PharmacyPlugin) -> None:
    text = ("ref,age,sex,weight_kg,creatinine_umol_l,allergies,conditions,drug,atc,dose_mg,frequency_per_day,route\n"
            "r1,70,F,55,140,penicillin;latex,asthma,propranolol,,40,2,oral\n"
            "r1,70,F,55,140,penicillin;latex,asthma,amoxicillin,J01CA04,1000,3,oral\n"
            "r2,40,M,90,80,,,paracetamol,,1000,4,po\n")
    out = run_doc(pharmacy, text, "text/csv")
    as_json = run_doc(pharmacy, [
        {"ref": "r1", "patient": {"age": 70, "sex": "female", "weight_kg": 55, "creatinine_umol_l": 140,
                                  "conditions": ["asthma"]}, "allergies": ["penicillin", "latex"],
         "prescriptions": [{"drug": "propranolol", "dose_mg": 40, "frequency_per_day": 2, "route": "oral"},
                           {"drug": "amoxicillin", "atc": "J01CA04", "dose_mg": 1000, "frequency_per_day": 3,
                            "route": "oral"}]},
        {"ref": "r2", "patient": {"age": 40, "sex": "male", "weight_kg": 90, "creatinine_umol_l": 80},
         "prescriptions": [{"drug": "paracetamol", "dose_mg": 1000, "frequency_per_day": 4, "route": "oral"}]}])
    assert out == as_json and out[0]["triage_rank"] == 1


def test_fhir_and_flat_give_the_same_result(pharmacy: PharmacyPlugin) -> None:
    def med(mid: str, atc: str, name: str, dose: dict[str, Any], freq: int, period: float, unit: str) -> dict[str, Any]:
        return {"resourceType": "MedicationRequest", "id": mid, "status": "active", "intent": "order",
                "subject": {"reference": "Patient/p1"},
                "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": atc,
                                                          "display": name}]},
                "dosageInstruction": [{"route": {"text": "oral"}, "doseAndRate": [{"doseQuantity": dose}],
                                       "timing": {"repeat": {"frequency": freq, "period": period, "periodUnit": unit}}}]}
    bundle = fhir_bundle([
        {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1942-05-17"},
        observation("w", "29463-7", "2024-02-28T08:00:00Z", 60, "kg"),
        observation("h", "8302-2", "2024-02-28T08:00:00Z", 1.6, "m"),
        observation("c0", "2160-0", "2024-02-20T08:00:00Z", 1.1, "mg/dL"),
        observation("c1", "2160-0", "2024-02-29T08:00:00Z", 1.6, "mg/dL"),
        med("m1", "B01AA03", "warfarin", {"value": 5, "code": "mg"}, 1, 1, "d"),
        med("m2", "M01AE01", "ibuprofen", {"value": 0.4, "code": "g"}, 1, 8, "h"),
        med("m3", "L04AX03", "methotrexate", {"value": 15, "code": "mg"}, 1, 1, "wk"),
        {"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": "Patient/p1"},
         "code": {"text": "Penicillin"}},
        {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
         "code": {"text": "heart failure"}},
    ])
    flat = {"ref": "Patient/p1", "patient": {"age": 81, "sex": "female", "weight_kg": 60, "height_cm": 160,
                                             "creatinine_mg_dl": 1.6, "conditions": ["heart failure"]},
            "allergies": ["Penicillin"],
            "prescriptions": [{"drug": "warfarin", "atc": "B01AA03", "dose_mg": 5, "frequency_per_day": 1, "route": "oral"},
                              {"drug": "ibuprofen", "atc": "M01AE01", "dose_mg": 400, "frequency_per_day": 3,
                               "route": "oral"},
                              {"drug": "methotrexate", "atc": "L04AX03", "dose_mg": 15,
                               "frequency_per_day": round(1 / 7, 6), "route": "oral"}]}
    assert run_doc(pharmacy, bundle) == run_doc(pharmacy, flat)


def test_knowledge_base_size_sources_and_licences() -> None:
    kb = KnowledgeBase.load()
    assert len(kb.drugs) >= 50 and len(kb.interactions) >= 50
    kb_dir = Path(__file__).resolve().parents[2] / "plugins" / "pharmacy" / "kb"
    for path in kb_dir.glob("*.csv"):
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert rows and all(r["source"] and r["licence"] for r in rows), path.name


def test_pharmacist_extends_the_base_without_code(tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    shutil.copytree(Path(__file__).resolve().parents[2] / "plugins" / "pharmacy" / "kb", kb_dir)
    with (kb_dir / "drugs.csv").open("a") as fh:
        fh.write("N02AJ13,tramadol and paracetamol,ixprim,0,WHO-ATC,WHOCC-ATC-TERMS\n")
    with (kb_dir / "interactions.csv").open("a") as fh:
        fh.write("N02AJ13,N06AB,précaution d'emploi,serotonin syndrome,AIWS-CURATED,CC-BY-4.0\n")
    plugin = PharmacyPlugin(kb_dir)
    out = run_doc(plugin, {"patient": ADULT, "prescriptions": [{"drug": "ixprim"}, {"drug": "sertraline"}]})
    assert [(a["type"], a["severity"]) for a in out["alerts"]] == [("interaction", "moderate")]


@pytest.mark.parametrize(("file", "row", "message"), [
    ("interactions.csv", "B01AA03,M01A,maybe,bleeding,AIWS-CURATED,CC-BY-4.0\n", "column level"),
    ("doses.csv", "B01AA03,oral,ten,,,,,,AIWS-CURATED,CC-BY-4.0\n", "column max_single_mg"),
    ("renal.csv", "Z99ZZ,0,30,avoid,,,high,x,AIWS-CURATED,CC-BY-4.0,\n", "matches no drug"),
    ("renal.csv", "A10BA02,60,90,reduce,3000,,low,x,EU-SMPC,CC-BY-4.0,\n", "column reference: required"),
    ("drugs.csv", "B01AA99,newdrug,,0,WHO-ATC,UNKNOWN-LICENCE\n", "column licence"),
])
def test_malformed_knowledge_base_row_is_named(tmp_path: Path, file: str, row: str, message: str) -> None:
    kb_dir = tmp_path / "kb"
    shutil.copytree(Path(__file__).resolve().parents[2] / "plugins" / "pharmacy" / "kb", kb_dir)
    with (kb_dir / file).open("a") as fh:
        fh.write(row)
    with pytest.raises(KnowledgeBaseError, match=message):
        KnowledgeBase.load(kb_dir)


# EU SmPC renal caps encoded in renal.csv with a per-row reference (see the row's `reference` column):
# metformin (SmPC 4.2 renal table, EMA Art. 31 review 2016): GFR 45-59 -> 2000 mg/day, 30-44 -> 1000 mg/day;
# ramipril (SmPC 4.2 "Patients with renal impairment"): CrCl 30-60 -> maximal 5 mg/day, >= 60 -> 10 mg/day.
def _crcl_patient(crcl: float) -> dict[str, Any]:
    """A male of 60 years whose Cockcroft-Gault clearance is *crcl* ml/min (80 kg: CrCl = 6400 / (72 x Cr))."""
    return {"age": 60, "sex": "male", "weight_kg": 80, "height_cm": 180,
            "creatinine_mg_dl": round(6400 / (72 * crcl), 6)}


@pytest.mark.parametrize(("crcl", "daily_mg", "alerted"), [
    (50.0, 3000, True),    # the case: 1000 mg x 3 at CrCl 50 exceeds the 2000 mg/day cap
    (50.0, 2000, False),   # at the cap
    (45.0, 2550, True),    # lower edge of the 45-59 band
    (59.9, 2550, True),    # upper edge of the 45-59 band
    (60.0, 2550, False),   # 60-89: up to 3000 mg/day
    (44.9, 1500, True),    # 30-44: 1000 mg/day
])
def test_metformin_smpc_renal_cap(pharmacy: PharmacyPlugin, crcl: float, daily_mg: float, alerted: bool) -> None:
    out = run_doc(pharmacy, {"patient": _crcl_patient(crcl),
                             "prescriptions": [{"drug": "metformin", "dose_mg": daily_mg / 3, "frequency_per_day": 3}]})
    assert out["creatinine_clearance_ml_min"] == pytest.approx(crcl, abs=0.05)
    renal = alerts_of(out, "renal")
    assert bool(renal) == alerted
    if alerted:
        assert "EU SmPC of metformin" in renal[0]["reference"] and "section 4.2" in renal[0]["reference"]


@pytest.mark.parametrize(("crcl", "dose_mg", "alerted"), [
    (40.0, 10, True),      # the case: ramipril 10 mg at CrCl 40
    (40.0, 5, False),
    (30.0, 10, True), (59.9, 10, True),
    (60.0, 10, False),     # ">= 60 ml/min: maximal daily dose 10 mg"
    (29.9, 10, True),      # 10-30: maximal 5 mg/day
])
def test_ramipril_smpc_renal_cap(pharmacy: PharmacyPlugin, crcl: float, dose_mg: float, alerted: bool) -> None:
    out = run_doc(pharmacy, {"patient": _crcl_patient(crcl),
                             "prescriptions": [{"drug": "ramipril", "dose_mg": dose_mg, "frequency_per_day": 1}]})
    renal = alerts_of(out, "renal")
    assert bool(renal) == alerted
    if alerted:
        assert "at most 5 mg/day" in renal[0]["message"] and "EU SmPC of ramipril" in renal[0]["reference"]


def test_every_smpc_row_cites_its_source() -> None:
    kb = KnowledgeBase.load()
    smpc = [r for r in kb.renal if r.atc in ("A10BA02", "C09AA05")]
    assert len(smpc) == 5 and all("SmPC" in r.reference and "4.2" in r.reference for r in smpc)


# Minimum-creatinine convention (kb/manifest.json creatinine_floor: age >= 65, 0.8 mg/dL = 70.7 umol/L).
def test_frail_elderly_low_creatinine_is_floored() -> None:
    kb = KnowledgeBase.load()
    patient = Patient(age=90, sex="female", weight_kg=50, creatinine_mg_dl=0.3)
    raw = cockcroft_gault(patient)
    assert raw.creatinine_clearance_ml_min == 98.4 and raw.band == "normal (>= 80)"  # the "normal" 98
    floored = cockcroft_gault(patient, kb.creatinine_floor)
    assert floored.creatinine_clearance_ml_min == round(50 * 50 / (72 * 0.8) * 0.85, 1) == 36.9
    assert floored.band == "moderate (30-50)" and "raised to 0.8 mg/dL" in floored.creatinine_basis


@pytest.mark.parametrize(("patient", "floored"), [
    ({"age": 65, "sex": "male", "weight_kg": 70, "creatinine_mg_dl": 0.79}, True),    # from age 65
    ({"age": 64, "sex": "male", "weight_kg": 70, "creatinine_mg_dl": 0.79}, False),   # younger: measured value
    ({"age": 80, "sex": "male", "weight_kg": 70, "creatinine_mg_dl": 0.8}, False),    # at the floor
    ({"age": 80, "sex": "male", "weight_kg": 70, "creatinine_umol_l": 50}, True),     # 70.7 umol/L
    ({"age": 80, "sex": "male", "weight_kg": 70, "creatinine_umol_l": 71}, False),
])
def test_creatinine_floor_boundaries(patient: dict[str, Any], floored: bool) -> None:
    floor = KnowledgeBase.load().creatinine_floor
    assert floor is not None and floor.min_age == 65 and floor.mg_dl == 0.8 and floor.umol_l == pytest.approx(70.72)
    res = cockcroft_gault(Patient.model_validate(patient), floor)
    assert (res.creatinine_basis is not None) == floored
    if patient.get("creatinine_umol_l") == 50:
        assert res.creatinine_clearance_ml_min == round(60 * 70 * 1.23 / 70.72, 1)


def test_plugin_output_shows_floor_and_knowledge_base_status(pharmacy: PharmacyPlugin) -> None:
    out = run_doc(pharmacy, {"patient": {"age": 90, "sex": "female", "weight_kg": 50, "creatinine_mg_dl": 0.3},
                             "prescriptions": [{"drug": "paracetamol"}]})
    assert out["creatinine_clearance_ml_min"] == 36.9 and "raised to 0.8 mg/dL" in out["explanation"][0]
    status = KnowledgeBase.load().status
    assert status.startswith("starter set") and "reviewed and validated by the hospital pharmacy" in status
    assert out["provenance"]["review_status"] == status and status in out["disclaimer"]
    assert out["provenance"]["knowledge_base_version"] == out["kb_version"] and out["provenance"]["model"] is None
