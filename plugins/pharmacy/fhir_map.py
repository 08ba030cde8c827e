"""FHIR R4 Bundle → flat pharmacy inputs, one per Patient.

Patient: gender, birthDate (age at Bundle.timestamp, else today). Observations (latest value):
body weight 29463-7 (kg, [lb_av]), body height 8302-2 (cm, m, [in_i]), creatinine 2160-0 (mg/dL) or
14682-9 (µmol/L). MedicationRequest (status active, draft or on-hold): ATC coding of
medicationCodeableConcept (system http://www.whocc.no/atc), name from its text/display, dose from
dosageInstruction[0].doseAndRate[0].doseQuantity (mg, g, ug), frequency from timing.repeat
(frequency / period in days), route from route text/display. AllergyIntolerance: code text or
display, plus its ATC code when coded. Condition: code text or display.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from plugins import fhir
from plugins.errors import FieldProblem, InvalidInput

_WEIGHT = {"kg": 1.0, "[lb_av]": 0.45359237, "g": 0.001}
_HEIGHT = {"cm": 1.0, "m": 100.0, "[in_i]": 2.54}
_DOSE = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001, "µg": 0.001}
_PERIOD_DAYS = {"h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.0, "min": 1 / 1440}
_ACTIVE = ("active", "draft", "on-hold", None)


def _bad(where: str, rule: str, value: Any = None) -> InvalidInput:
    return InvalidInput("pharmacy", [FieldProblem(where, rule, None if value is None else repr(value)[:60])])


def _scaled(res: Any, key: str, table: dict[str, float], q: tuple[float, str]) -> float:
    factor = table.get(q[1])
    if factor is None:
        raise _bad(f"{fhir.label(res)}.valueQuantity.code", f"unit not supported for {key} ({', '.join(table)})", q[1])
    return round(q[0] * factor, 4)


def _observations(bundle: Any) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, tuple[datetime, float]]] = defaultdict(dict)
    oldest = datetime.min.replace(tzinfo=UTC)
    for obs in fhir.resources(bundle, "Observation"):
        q = fhir.quantity(obs.valueQuantity)
        if q is None or obs.status in ("entered-in-error", "cancelled"):
            continue
        when = fhir.observation_time(obs) or oldest
        for code in fhir.codes(obs.code, fhir.LOINC):
            key_value = {"29463-7": ("weight_kg", _WEIGHT), "8302-2": ("height_cm", _HEIGHT),
                         "2160-0": ("creatinine_mg_dl", {"mg/dL": 1.0}),
                         "14682-9": ("creatinine_umol_l", {"umol/L": 1.0, "µmol/L": 1.0})}.get(code)
            if key_value is None:
                continue
            key, table = key_value
            patient = fhir.reference(obs.subject) or ""
            group = "creatinine" if key.startswith("creatinine") else key
            if group not in latest[patient] or when >= latest[patient][group][0]:
                latest[patient][group] = (when, (key, _scaled(obs, key, table, q)))  # type: ignore[assignment]
    return {p: dict(v[1] for v in groups.values()) for p, groups in latest.items()}  # type: ignore[misc]


def _prescription(req: Any) -> dict[str, Any]:
    concept = req.medicationCodeableConcept
    atc = next(iter(fhir.codes(concept, fhir.ATC_SYSTEMS)), None)
    rx: dict[str, Any] = {"drug": fhir.concept_text(concept), "atc": atc}
    dosage = (req.dosageInstruction or [None])[0]
    if dosage is not None:
        dose = next((fhir.quantity(dr.doseQuantity) for dr in dosage.doseAndRate or [] if dr.doseQuantity), None)
        if dose is not None:
            rx["dose_mg"] = _scaled(req, "dose_mg", _DOSE, dose)
        rep = dosage.timing.repeat if dosage.timing else None
        if rep is not None and rep.frequency and rep.period and rep.periodUnit in _PERIOD_DAYS:
            rx["frequency_per_day"] = round(rep.frequency / (float(rep.period) * _PERIOD_DAYS[rep.periodUnit]), 6)
        route = fhir.concept_text(dosage.route)
        if route:
            rx["route"] = route
    return {k: v for k, v in rx.items() if v is not None}


def pharmacy_inputs(bundle: Any) -> list[dict[str, Any]]:
    """One flat input per Patient of the bundle (or per subject referenced without a Patient)."""
    at = fhir.bundle_date(bundle)
    obs = _observations(bundle)
    docs: dict[str, dict[str, Any]] = {}
    for pat in fhir.resources(bundle, "Patient"):
        ref = f"Patient/{pat.id}" if pat.id else ""
        patient: dict[str, Any] = {"sex": pat.gender} if pat.gender else {}
        if pat.birthDate:
            patient["age"] = fhir.age_years(pat.birthDate, at)
        docs[ref] = {"ref": ref or None, "patient": patient, "prescriptions": [], "allergies": []}
    for req in fhir.resources(bundle, "MedicationRequest"):
        if req.status in _ACTIVE:
            _doc(docs, fhir.reference(req.subject))["prescriptions"].append(_prescription(req))
    for allergy in fhir.resources(bundle, "AllergyIntolerance"):
        doc = _doc(docs, fhir.reference(allergy.patient))
        doc["allergies"] += [x for x in (fhir.concept_text(allergy.code), *fhir.codes(allergy.code, fhir.ATC_SYSTEMS)) if x]
    for cond in fhir.resources(bundle, "Condition"):
        text = fhir.concept_text(cond.code)
        if text:
            _doc(docs, fhir.reference(cond.subject))["patient"].setdefault("conditions", []).append(text)
    for ref, values in obs.items():
        _doc(docs, ref)["patient"].update(values)
    return [d for d in docs.values() if d["prescriptions"]] or list(docs.values())


def _doc(docs: dict[str, dict[str, Any]], ref: str | None) -> dict[str, Any]:
    key = ref or ""
    if key not in docs:
        docs[key] = {"ref": ref, "patient": {}, "prescriptions": [], "allergies": []}
    return docs[key]
