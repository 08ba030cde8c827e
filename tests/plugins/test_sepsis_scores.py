"""NEWS2, qSOFA, SIRS and SOFA at every published threshold boundary (REFERENCE.md)."""
from __future__ import annotations

from typing import Any

import pytest

from plugins.sepsis.models import SepsisObservation
from plugins.sepsis.scores import at_chart_precision, news2, news2_components, qsofa, round_half_up, sirs
from plugins.sepsis.sofa import cardiovascular, cns, coagulation, liver, renal, respiration, sofa


def obs(**values: Any) -> SepsisObservation:
    return at_chart_precision(SepsisObservation.model_validate(values))


def news2_points(parameter: str, **values: Any) -> int | None:
    comp = {c.parameter: c for c in news2_components(obs(**values))}[parameter]
    return comp.points


NORMAL = {"respiratory_rate": 16, "spo2": 97, "on_oxygen": False, "systolic_bp": 120, "heart_rate": 70,
          "consciousness": "A", "temperature_c": 37.0}


@pytest.mark.parametrize(("rr", "points"), [(8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3),
                                            (20.4, 0), (20.5, 2), (8.5, 1), (24.49, 2)])
def test_news2_respiratory_rate(rr: float, points: int) -> None:
    assert news2_points("respiratory_rate", respiratory_rate=rr) == points


@pytest.mark.parametrize(("spo2", "points"), [(91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0),
                                              (95.5, 0), (91.4, 3)])
def test_news2_spo2_scale1(spo2: float, points: int) -> None:
    assert news2_points("spo2", spo2=spo2, spo2_scale=1) == points


@pytest.mark.parametrize(("spo2", "on_oxygen", "points"), [
    (83, None, 3), (84, None, 2), (85, None, 2), (86, None, 1), (87, None, 1), (88, None, 0), (92, None, 0),
    (93, False, 0), (97, False, 0), (93, True, 1), (94, True, 1), (95, True, 2), (96, True, 2), (97, True, 3),
    (100, True, 3)])
def test_news2_spo2_scale2(spo2: float, on_oxygen: bool | None, points: int) -> None:
    assert news2_points("spo2", spo2=spo2, spo2_scale=2, on_oxygen=on_oxygen) == points


def test_news2_spo2_scale2_needs_oxygen_status_from_93() -> None:
    comp = {c.parameter: c for c in news2_components(obs(spo2=93, spo2_scale=2))}["spo2"]
    assert comp.points is None and comp.status == "not computed" and "on_oxygen" in comp.rule


@pytest.mark.parametrize(("on_oxygen", "points"), [(True, 2), (False, 0)])
def test_news2_air_or_oxygen(on_oxygen: bool, points: int) -> None:
    assert news2_points("on_oxygen", on_oxygen=on_oxygen) == points


@pytest.mark.parametrize(("sbp", "points"), [(90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0),
                                             (220, 3), (110.5, 0)])
def test_news2_systolic_bp(sbp: float, points: int) -> None:
    assert news2_points("systolic_bp", systolic_bp=sbp) == points


@pytest.mark.parametrize(("hr", "points"), [(40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1),
                                            (111, 2), (130, 2), (131, 3), (90.5, 1)])
def test_news2_pulse(hr: float, points: int) -> None:
    assert news2_points("heart_rate", heart_rate=hr) == points


@pytest.mark.parametrize(("level", "points"), [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)])
def test_news2_consciousness(level: str, points: int) -> None:
    assert news2_points("consciousness", consciousness=level) == points


@pytest.mark.parametrize(("temp", "points"), [(35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1),
                                              (39.0, 1), (39.1, 2), (35.04, 3), (35.05, 1), (38.04, 0), (38.05, 1)])
def test_news2_temperature(temp: float, points: int) -> None:
    assert news2_points("temperature_c", temperature_c=temp) == points


@pytest.mark.parametrize(("changes", "total", "risk"), [
    ({}, 0, "low"),
    ({"respiratory_rate": 21, "spo2": 94, "heart_rate": 91}, 4, "low"),            # 2 + 1 + 1
    ({"respiratory_rate": 25, "heart_rate": 91}, 4, "low-medium"),                 # a single 3 → low-medium
    ({"consciousness": "V"}, 3, "low-medium"),
    ({"respiratory_rate": 21, "on_oxygen": True, "temperature_c": 38.5}, 5, "medium"),
    ({"respiratory_rate": 25, "heart_rate": 91, "spo2": 95}, 5, "medium"),         # a 3 in 5–6 stays medium
    ({"respiratory_rate": 21, "on_oxygen": True, "heart_rate": 111}, 6, "medium"),
    ({"respiratory_rate": 21, "on_oxygen": True, "heart_rate": 111, "temperature_c": 38.5}, 7, "high"),
])
def test_news2_total_and_risk_bands(changes: dict[str, Any], total: int, risk: str) -> None:
    result = news2(obs(**{**NORMAL, **changes}))
    assert (result.total, result.risk) == (total, risk)


def test_news2_missing_parameter_is_not_computed() -> None:
    values = {k: v for k, v in NORMAL.items() if k != "temperature_c"} | {"respiratory_rate": 25}
    result = news2(obs(**values))
    assert result.total is None and result.risk is None and result.status == "not computed"
    assert result.missing == ["temperature_c"] and result.lower_bound == 3


def test_round_half_up() -> None:
    assert [round_half_up(20.5), round_half_up(21.5), round_half_up(35.05, 1), round_half_up(36.95, 1)] == \
        [21.0, 22.0, 35.1, 37.0]


@pytest.mark.parametrize(("values", "total", "positive"), [
    ({"respiratory_rate": 21, "gcs": 15, "systolic_bp": 101}, 0, False),
    ({"respiratory_rate": 22, "gcs": 15, "systolic_bp": 101}, 1, False),
    ({"respiratory_rate": 22, "gcs": 14, "systolic_bp": 101}, 2, True),
    ({"respiratory_rate": 21, "gcs": 15, "systolic_bp": 100}, 1, False),
    ({"respiratory_rate": 22, "gcs": 14, "systolic_bp": 100}, 3, True),
    ({"respiratory_rate": 21, "consciousness": "C", "systolic_bp": 100}, 2, True),   # ACVPU proxy
    ({"respiratory_rate": 22, "consciousness": "A", "systolic_bp": 101}, 1, False),
])
def test_qsofa_boundaries(values: dict[str, Any], total: int, positive: bool) -> None:
    result = qsofa(obs(**values))
    assert (result.total, result.positive) == (total, positive)


@pytest.mark.parametrize(("values", "positive"), [
    ({"respiratory_rate": 22, "systolic_bp": 90}, True),     # mentation unknown but 2 met already
    ({"respiratory_rate": 12, "systolic_bp": 130}, False),   # at most 1 possible
    ({"respiratory_rate": 22, "systolic_bp": 130}, None),    # undetermined
])
def test_qsofa_missing_mentation_three_valued(values: dict[str, Any], positive: bool | None) -> None:
    result = qsofa(obs(**values))
    assert result.total is None and result.positive is positive and result.missing == ["gcs"]


@pytest.mark.parametrize(("values", "count"), [
    ({"temperature_c": 38.0, "heart_rate": 90, "respiratory_rate": 20, "wbc": 12}, 0),
    ({"temperature_c": 38.1, "heart_rate": 90, "respiratory_rate": 20, "wbc": 12}, 1),
    ({"temperature_c": 36.0, "heart_rate": 91, "respiratory_rate": 20, "wbc": 4}, 1),
    ({"temperature_c": 35.9, "heart_rate": 91, "respiratory_rate": 21, "wbc": 3.9}, 4),
    ({"temperature_c": 37, "heart_rate": 80, "respiratory_rate": 16, "paco2": 32, "wbc": 12.1}, 1),
    ({"temperature_c": 37, "heart_rate": 80, "respiratory_rate": 16, "paco2": 31.9, "wbc": 8}, 1),
    ({"temperature_c": 37, "heart_rate": 80, "respiratory_rate": 16, "wbc": 8, "bands_percent": 10}, 0),
    ({"temperature_c": 37, "heart_rate": 80, "respiratory_rate": 16, "wbc": 8, "bands_percent": 10.1}, 1),
])
def test_sirs_boundaries(values: dict[str, Any], count: int) -> None:
    result = sirs(obs(**values))
    assert result.count == count and result.positive is (count >= 2)


def test_sirs_missing_white_cells() -> None:
    assert sirs(obs(temperature_c=39, heart_rate=100)).positive is True
    undecided = sirs(obs(temperature_c=39, heart_rate=80, respiratory_rate=16))
    assert undecided.count is None and undecided.positive is None and undecided.missing == ["white_cells"]


@pytest.mark.parametrize(("pf", "support", "points"), [
    (400, None, 0), (399, None, 1), (300, None, 1), (299, None, 2), (200, True, 2), (199, True, 3), (199, False, 2),
    (100, True, 3), (99, True, 4), (99, False, 2)])
def test_sofa_respiration(pf: float, support: bool | None, points: int) -> None:
    assert respiration(obs(pao2_fio2=pf, on_respiratory_support=support)).points == points


def test_sofa_respiration_unknown_support_below_200() -> None:
    assert respiration(obs(pao2_fio2=150)).status == "not computed"


@pytest.mark.parametrize(("platelets", "points"), [(150, 0), (149.9, 1), (100, 1), (99.9, 2), (50, 2), (49.9, 3),
                                                   (20, 3), (19.9, 4)])
def test_sofa_coagulation(platelets: float, points: int) -> None:
    assert coagulation(obs(platelets=platelets)).points == points


@pytest.mark.parametrize(("bili", "points"), [(1.19, 0), (1.2, 1), (1.9, 1), (1.99, 1), (2.0, 2), (5.9, 2), (6.0, 3),
                                              (11.9, 3), (11.99, 3), (12.0, 4)])
def test_sofa_liver(bili: float, points: int) -> None:
    assert liver(obs(bilirubin_mg_dl=bili)).points == points


@pytest.mark.parametrize(("values", "points"), [
    ({"map": 70}, 0), ({"map": 69}, 1), ({"map": 69.4}, 1), ({"map": 69.5}, 0),
    ({"map": 80, "vasopressors": {"dobutamine": 2}}, 2),
    ({"map": 80, "vasopressors": {"dopamine": 5}}, 2), ({"map": 80, "vasopressors": {"dopamine": 5.1}}, 3),
    ({"map": 80, "vasopressors": {"dopamine": 15}}, 3), ({"map": 80, "vasopressors": {"dopamine": 15.1}}, 4),
    ({"map": 60, "vasopressors": {"noradrenaline": 0.1}}, 3), ({"map": 60, "vasopressors": {"noradrenaline": 0.11}}, 4),
    ({"map": 60, "vasopressors": {"adrenaline": 0.05}}, 3), ({"vasopressors": {"epinephrine": 0.2}}, 4),
    ({"vasopressors": {"norepinephrine": 0.05, "dobutamine": 5}}, 3), ({"map": 65, "vasopressors": {"dopamine": 0}}, 1),
])
def test_sofa_cardiovascular(values: dict[str, Any], points: int) -> None:
    assert cardiovascular(obs(**values)).points == points


def test_sofa_cardiovascular_needs_map_without_vasopressor() -> None:
    assert cardiovascular(obs(vasopressors={})).status == "not computed"


@pytest.mark.parametrize(("gcs", "points"), [(15, 0), (14, 1), (13, 1), (12, 2), (10, 2), (9, 3), (6, 3), (5, 4), (3, 4)])
def test_sofa_cns(gcs: int, points: int) -> None:
    assert cns(obs(gcs=gcs)).points == points


@pytest.mark.parametrize(("values", "points"), [
    ({"creatinine_mg_dl": 1.19}, 0), ({"creatinine_mg_dl": 1.2}, 1), ({"creatinine_mg_dl": 1.9}, 1),
    ({"creatinine_mg_dl": 2.0}, 2), ({"creatinine_mg_dl": 3.4}, 2), ({"creatinine_mg_dl": 3.5}, 3),
    ({"creatinine_mg_dl": 4.9}, 3), ({"creatinine_mg_dl": 4.95}, 3), ({"creatinine_mg_dl": 5.0}, 4),
    ({"creatinine_mg_dl": 1.0, "urine_ml_day": 500}, 0), ({"creatinine_mg_dl": 1.0, "urine_ml_day": 499}, 3),
    ({"creatinine_mg_dl": 1.0, "urine_ml_day": 200}, 3), ({"creatinine_mg_dl": 1.0, "urine_ml_day": 199}, 4),
    ({"creatinine_mg_dl": 5.2, "urine_ml_day": 400}, 4), ({"urine_ml_day": 150}, 4),
])
def test_sofa_renal(values: dict[str, Any], points: int) -> None:
    assert renal(obs(**values)).points == points


def test_sofa_renal_urine_alone_above_200_is_not_computed() -> None:
    assert renal(obs(urine_ml_day=300)).status == "not computed"


def test_sofa_total_and_lower_bound() -> None:
    full = sofa(obs(pao2_fio2=250, platelets=90, bilirubin_mg_dl=2.5, map=65, gcs=12, creatinine_mg_dl=3.6))
    assert (full.total, full.lower_bound, full.missing) == (2 + 2 + 2 + 1 + 2 + 3, 12, [])
    partial = sofa(obs(platelets=90, gcs=12))
    assert partial.total is None and partial.lower_bound == 4
    assert partial.missing == ["respiration", "liver", "cardiovascular", "renal"]
