"""FiO2 sent in FHIR (LOINC 3150-0) is read by its unit: a unitless 0.40 is a fraction (40 %), not room
air; "%" is percent; the UCUM unity "1" is a fraction. NEWS2 (Royal College of Physicians 2017, chart
"Scoring for supplemental oxygen" and "SpO2 scale 2") then gives 2 points for oxygen and scores scale-2
SpO2 >= 93 % as on oxygen (93-94 → 1, 95-96 → 2, >= 97 → 3)."""
from __future__ import annotations

from typing import Any

import pytest

from plugins.errors import InvalidInput
from plugins.sepsis.plugin import SepsisPlugin
from tests_plugins_helpers import fhir_bundle, observation, run_doc

T = "2024-03-01T10:00:00+00:00"


def _bundle(fio2: dict[str, Any], spo2: float = 95) -> dict[str, Any]:
    """A scale-2 patient with SpO2 *spo2* and one FiO2 Observation (*fio2*: valueQuantity fields)."""
    fio2_obs = {**observation("fio2", "3150-0", T, None, ""), "valueQuantity": fio2}
    scale = {**observation("scale", "spo2_scale", T, None, "", system="urn:aiws:plugin-input"),
             "valueInteger": 2}
    return fhir_bundle([observation("rr", "9279-1", T, 16, "/min"), observation("spo2", "59408-5", T, spo2, "%"),
                        scale, fio2_obs])


def _component(out: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in out["news2"]["components"] if c["parameter"] == name)


@pytest.mark.parametrize("fio2", [
    {"value": 0.40},                                                        # unitless fraction
    {"value": 0.40, "unit": "1", "system": "http://unitsofmeasure.org", "code": "1"},  # UCUM unity
    {"value": 40, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},    # percent
    {"value": 40},                                                          # unitless, clearly a percentage
])
def test_fio2_40_percent_in_any_unit_is_supplemental_oxygen(sepsis: SepsisPlugin, fio2: dict[str, Any]) -> None:
    out = run_doc(sepsis, _bundle(fio2))
    oxygen = _component(out, "on_oxygen")
    assert oxygen["value"] is True and oxygen["points"] == 2  # NEWS2: supplemental oxygen → 2
    spo2 = _component(out, "spo2")
    assert spo2["points"] == 2 and "on oxygen" in spo2["rule"]  # scale 2: 95-96 on oxygen → 2
    assert any(rule.startswith("FHIR FiO2 (LOINC 3150-0) by unit") for rule in out["rules"])


@pytest.mark.parametrize("fio2", [{"value": 0.21}, {"value": 21, "code": "%"}, {"value": 0.21, "code": "1"}])
def test_fio2_of_room_air_is_air(sepsis: SepsisPlugin, fio2: dict[str, Any]) -> None:
    out = run_doc(sepsis, _bundle(fio2, spo2=97))
    assert _component(out, "on_oxygen")["points"] == 0
    assert _component(out, "spo2")["points"] == 0  # scale 2: >= 93 on air → 0


def test_scale_2_on_oxygen_boundaries(sepsis: SepsisPlugin) -> None:
    points = {s: _component(run_doc(sepsis, _bundle({"value": 0.28}, spo2=s)), "spo2")["points"]
              for s in (92, 93, 94, 95, 96, 97)}
    assert points == {92: 0, 93: 1, 94: 1, 95: 2, 96: 2, 97: 3}


@pytest.mark.parametrize(("fio2", "field"), [
    ({"value": 5}, "Observation/fio2.valueQuantity.value"),           # neither a fraction nor a percentage
    ({"value": 0.4, "code": "%"}, "Observation/fio2.valueQuantity.value"),  # 0.4 % is no breathable gas
    ({"value": 1.4, "code": "1"}, "Observation/fio2.valueQuantity.value"),  # a fraction above 1
    ({"value": 40, "code": "L/min"}, "Observation/fio2.valueQuantity.code"),
])
def test_implausible_or_unknown_fio2_is_refused(sepsis: SepsisPlugin, fio2: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        run_doc(sepsis, _bundle(fio2))
    assert err.value.problems[0].field == field and "FiO2" in err.value.problems[0].rule
