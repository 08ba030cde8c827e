"""FHIR R4 Bundle → flat sepsis inputs (one per patient, the latest time point flat, earlier ones
in ``history``).

Observations are found by LOINC code (table below; blood-pressure panels by their components) or by
the ``urn:aiws:plugin-input`` system whose code is the flat key (``spo2_scale``,
``on_respiratory_support``). Units are converted from UCUM (°F, µmol/L, /µL); an unknown unit is
refused, never assumed. Oxygen: a flow (3151-8) > 0 L/min or an FiO2 (3150-0) above room air (21 %)
means supplemental oxygen; FiO2 is read by its unit (``%``; ``1`` or none for a fraction such as
0.40; see :func:`fio2_percent`). Vasopressors come from active MedicationRequests with an ATC code of
dopamine, dobutamine, noradrenaline or adrenaline and a rate in µg/kg/min.

Time points: every distinct observation time. At each, a measurement is the most recent value
recorded at or before it within its validity window: 4 h for vital signs, 24 h for laboratory
values (a common charting convention, stated in the output rules).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from plugins import fhir
from plugins.errors import FieldProblem, InvalidInput

Convert = Callable[[float, str], float | None]  # None = unit not accepted

VITAL_WINDOW = timedelta(hours=4)
LAB_WINDOW = timedelta(hours=24)


def _unit(accepted: dict[str, float]) -> Convert:
    def convert(value: float, unit: str) -> float | None:
        factor = accepted.get(unit.strip())
        return None if factor is None else value * factor
    return convert


def _temperature(value: float, unit: str) -> float | None:
    if unit in ("Cel", "°C", "C", "degC", ""):
        return value
    if unit in ("[degF]", "°F", "F", "degF"):
        return (value - 32.0) * 5.0 / 9.0
    return None


_PER_MIN = _unit({"/min": 1, "{beats}/min": 1, "{breaths}/min": 1, "1/min": 1, "": 1})
_PERCENT = _unit({"%": 1, "": 1, "1": 100})
_MMHG = _unit({"mm[Hg]": 1, "mmHg": 1, "": 1})
_SCORE = _unit({"{score}": 1, "1": 1, "": 1})
_COUNT_1E3_UL = _unit({"10*3/uL": 1, "10*9/L": 1, "10^9/L": 1, "/nL": 1, "x10E3/uL": 1, "/uL": 1e-3, "": 1})
_BILIRUBIN = _unit({"mg/dL": 1, "umol/L": 1 / 17.1, "µmol/L": 1 / 17.1})
_CREATININE = _unit({"mg/dL": 1, "umol/L": 1 / 88.4, "µmol/L": 1 / 88.4})
_URINE_DAY = _unit({"mL": 1, "mL/(24.h)": 1, "mL/d": 1, "ml": 1})

#: LOINC → (flat key, converter, is a laboratory value)
LOINC_MAP: dict[str, tuple[str, Convert, bool]] = {
    "9279-1": ("respiratory_rate", _PER_MIN, False),
    "8867-4": ("heart_rate", _PER_MIN, False),
    "59408-5": ("spo2", _PERCENT, False),
    "2708-6": ("spo2", _PERCENT, False),
    "8480-6": ("systolic_bp", _MMHG, False),
    "8478-0": ("map", _MMHG, False),
    "8310-5": ("temperature_c", _temperature, False),
    "9269-2": ("gcs", _SCORE, False),
    "50984-4": ("pao2_fio2", _MMHG, True),
    "2019-8": ("paco2", _MMHG, True),
    "777-3": ("platelets", _COUNT_1E3_UL, True),
    "26515-7": ("platelets", _COUNT_1E3_UL, True),
    "1975-2": ("bilirubin_mg_dl", _BILIRUBIN, True),
    "42719-5": ("bilirubin_mg_dl", _BILIRUBIN, True),
    "2160-0": ("creatinine_mg_dl", _CREATININE, True),
    "14682-9": ("creatinine_mg_dl", _CREATININE, True),
    "6690-2": ("wbc", _COUNT_1E3_UL, True),
    "26464-8": ("wbc", _COUNT_1E3_UL, True),
    "764-1": ("bands_percent", _PERCENT, True),
    "3167-4": ("urine_ml_day", _URINE_DAY, True),
}
_O2_FLOW = "3151-8"        # inhaled oxygen flow rate: > 0 → on oxygen
_FIO2 = "3150-0"           # inhaled oxygen concentration: > 21 % → on oxygen (see fio2_percent)
_O2_FLOW_L_MIN = _unit({"L/min": 1, "l/min": 1, "mL/min": 1e-3, "": 1})
#: FiO2 of room air (%): a higher FiO2 is supplemental oxygen (NEWS2: "supplemental oxygen → 2").
ROOM_AIR_FIO2_PERCENT = 21.0
#: plausible FiO2 range (%): below 20 % is no breathable mixture, above 100 % is impossible.
FIO2_RANGE_PERCENT = (20.0, 100.0)
_ACVPU = "67775-7"         # level of responsiveness
_ACVPU_SNOMED = {"248234008": "A", "40917007": "C", "300202002": "V", "450847001": "P", "422768004": "U"}
_ACVPU_WORDS = (("alert", "A"), ("confus", "C"), ("voice", "V"), ("verbal", "V"), ("pain", "P"), ("unresp", "U"))
_FLAT_KEYS = {"spo2_scale", "on_oxygen", "on_respiratory_support", "consciousness"}
#: ATC → SOFA vasopressor name
VASOPRESSOR_ATC = {"C01CA04": "dopamine", "C01CA07": "dobutamine", "C01CA03": "noradrenaline",
                   "C01CA24": "adrenaline"}
_LAB_KEYS = {key for key, _, lab in LOINC_MAP.values() if lab}
#: numeric flat keys accepted under the urn:aiws:plugin-input system too (first converter of each key)
_AIWS_NUMERIC: dict[str, Convert] = {}
for _key, _convert, _ in LOINC_MAP.values():
    _AIWS_NUMERIC.setdefault(_key, _convert)

Reading = tuple[datetime, str, Any]  # (time, flat key, value)


def _acvpu(value: Any) -> str | None:
    if isinstance(value, str):
        text = value.strip()
        if text.upper() in ("A", "C", "V", "P", "U"):
            return text.upper()
        return next((letter for word, letter in _ACVPU_WORDS if word in text.lower()), None)
    for code in fhir.codes(value):
        if code.upper() in ("A", "C", "V", "P", "U"):
            return code.upper()
        if code in _ACVPU_SNOMED:
            return _ACVPU_SNOMED[code]
    text = fhir.concept_text(value)
    return _acvpu(text) if text else None


def _raw_value(obs: Any) -> Any:
    for attr in ("valueQuantity", "valueBoolean", "valueInteger", "valueString", "valueCodeableConcept"):
        value = getattr(obs, attr, None)
        if value is not None:
            return value
    return None


def _bad(where: str, rule: str, value: Any = None) -> InvalidInput:
    return InvalidInput("sepsis", [FieldProblem(where, rule, None if value is None else repr(value)[:60])])


def _quantity_reading(where: str, key: str, convert: Convert, value: Any) -> float:
    q = fhir.quantity(value) if hasattr(value, "value") else (float(value), "") if isinstance(value, (int, float)) else None
    if q is None:
        raise _bad(f"{where}.value[x]", f"{key}: a numeric value is required")
    converted = convert(*q)
    if converted is None:
        raise _bad(f"{where}.valueQuantity.code", f"unit not supported for {key}", q[1])
    return round(converted, 4)


def fio2_percent(where: str, value: Any) -> float:
    """FiO2 (LOINC 3150-0) in percent, by its UCUM unit.

    ``%`` → percent (40 → 40 %); ``1`` (the UCUM unity, a fraction) → × 100 (0.40 → 40 %);
    no unit → a fraction when <= 1 (0.40 → 40 %, 1 → 100 %), percent when >= 20 (40 → 40 %),
    refused in between (e.g. 5: neither a plausible fraction nor a plausible percentage).
    The result must lie in 20–100 % (room air is 21 %). Raises :class:`InvalidInput` naming
    the resource otherwise, or on any other unit.
    """
    q = fhir.quantity(value) if hasattr(value, "value") else (float(value), "") if isinstance(value, (int, float)) \
        else None
    if q is None:
        raise _bad(f"{where}.value[x]", "FiO2: a numeric value is required")
    amount, unit = q[0], q[1].strip()
    if unit == "%":
        percent = amount
    elif unit == "1" or (unit == "" and amount <= 1.0):
        percent = amount * 100.0
    elif unit == "":
        percent = amount
    else:
        raise _bad(f"{where}.valueQuantity.code", "unit not supported for FiO2 (use %, or 1 for a fraction)", unit)
    lo, hi = FIO2_RANGE_PERCENT
    if not lo <= percent <= hi:
        raise _bad(f"{where}.valueQuantity.value", f"FiO2 {percent:g} % outside {lo:g}-{hi:g} % (unit {unit or 'none'!r}: "
                   "a fraction is 0.21-1, a percentage 21-100)", amount)
    return percent


def _coded_readings(where: str, code: str, value: Any) -> list[tuple[str, Any]]:
    """Readings of the codes that are not plain quantities."""
    if code == _ACVPU or code == "consciousness":
        letter = _acvpu(value)
        if letter is None:
            raise _bad(f"{where}.value[x]", "consciousness must be A, C, V, P or U (or SNOMED/text equivalent)")
        return [("consciousness", letter)]
    if code == _O2_FLOW:
        flow = _quantity_reading(where, "oxygen flow", _O2_FLOW_L_MIN, value)
        return [("on_oxygen", flow > 0.0)]
    if code == _FIO2:
        return [("on_oxygen", fio2_percent(where, value) > ROOM_AIR_FIO2_PERCENT)]
    if code in ("on_oxygen", "on_respiratory_support"):
        if not isinstance(value, bool):
            raise _bad(f"{where}.valueBoolean", f"{code} must be a boolean")
        return [(code, value)]
    if code == "spo2_scale":
        return [("spo2_scale", int(_quantity_reading(where, code, _SCORE, value)))]
    return []


def _observation_readings(obs: Any, when: datetime) -> list[Reading]:
    where = fhir.label(obs)
    out: list[Reading] = []
    for code in fhir.codes(obs.code, fhir.AIWS_SYSTEM):
        if code not in _FLAT_KEYS and code not in _AIWS_NUMERIC:
            raise _bad(f"{where}.code", f"{code!r} is not a sepsis input key ({fhir.AIWS_SYSTEM})")
    parts = [(fhir.codes(obs.code, fhir.LOINC) + fhir.codes(obs.code, fhir.AIWS_SYSTEM), _raw_value(obs))]
    parts += [(fhir.codes(c.code, fhir.LOINC), _raw_value(c)) for c in obs.component or []]
    for codes, value in parts:
        for code in codes:
            if value is None:
                continue
            if code in LOINC_MAP:
                key, convert, _ = LOINC_MAP[code]
                out.append((when, key, _quantity_reading(where, key, convert, value)))
            elif code in (_ACVPU, _O2_FLOW, _FIO2) or code in _FLAT_KEYS:
                out.extend((when, key, v) for key, v in _coded_readings(where, code, value))
            elif code in _AIWS_NUMERIC:
                out.append((when, code, _quantity_reading(where, code, _AIWS_NUMERIC[code], value)))
    return out


def _vasopressors(bundle: Any) -> dict[str, list[tuple[datetime | None, str, float]]]:
    """Patient reference → [(authoredOn, drug, µg/kg/min)] from active MedicationRequests."""
    found: dict[str, list[tuple[datetime | None, str, float]]] = defaultdict(list)
    for req in fhir.resources(bundle, "MedicationRequest"):
        drug = next((VASOPRESSOR_ATC[c] for c in fhir.codes(req.medicationCodeableConcept, fhir.ATC_SYSTEMS)
                     if c in VASOPRESSOR_ATC), None)
        if drug is None or req.status not in ("active", None):
            continue
        for dosage in req.dosageInstruction or []:
            for dr in dosage.doseAndRate or []:
                rate = fhir.quantity(dr.rateQuantity)
                if rate is None:
                    continue
                if rate[1] not in ("ug/kg/min", "mcg/kg/min", "µg/kg/min"):
                    raise _bad(f"{fhir.label(req)}.dosageInstruction.doseAndRate.rateQuantity.code",
                               f"{drug} rate must be in ug/kg/min", rate[1])
                found[fhir.reference(req.subject) or ""].append((fhir.as_datetime(req.authoredOn), drug, rate[0]))
    return found


def _record_at(when: datetime, readings: list[Reading]) -> dict[str, Any]:
    latest: dict[str, tuple[datetime, Any]] = {}
    for t, key, value in readings:
        window = LAB_WINDOW if key in _LAB_KEYS else VITAL_WINDOW
        if t <= when and when - t <= window and (key not in latest or t >= latest[key][0]):
            latest[key] = (t, value)
    return {"time": when, **{key: value for key, (_, value) in latest.items()}}


def sepsis_inputs(bundle: Any) -> list[dict[str, Any]]:
    """One flat input per patient (Observation.subject), latest time point first-level."""
    per_patient: dict[str, list[Reading]] = defaultdict(list)
    for obs in fhir.resources(bundle, "Observation"):
        if obs.status in ("entered-in-error", "cancelled"):
            continue
        when = fhir.observation_time(obs)
        if when is None:
            raise _bad(f"{fhir.label(obs)}.effectiveDateTime", "an observation time is required")
        per_patient[fhir.reference(obs.subject) or ""].extend(_observation_readings(obs, when))
    pressors = _vasopressors(bundle)
    if not per_patient:
        raise _bad("Bundle.entry", "no Observation with a known LOINC code")
    out = []
    for ref, readings in per_patient.items():
        times = sorted({t for t, _, _ in readings})
        records = []
        for when in times:
            rec = _record_at(when, readings)
            doses = {drug: rate for start, drug, rate in pressors.get(ref, []) if start is None or start <= when}
            if doses:
                rec["vasopressors"] = doses
            records.append(rec)
        latest = records[-1]
        out.append({"ref": ref or None, **latest, "history": records[:-1]})
    return out
