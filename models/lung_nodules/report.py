"""Nodules -> the writers' values: one SR finding and one SEG segment per nodule, plus the exam finding.

Every rule that set or kept a category beyond the size table (:class:`lungrads.Rule`: the juxtapleural
benign rule, a new or growing solid component, 4X) is a coded entry of the nodule's measurement
group (concept "Lung-RADS rule applied", the rule's text as the code meaning) and so a line of the
summary image's legend. The exam group states the indication, whether Fleischner 2017 was applied
and the scope: the S modifier is not assessed, and the only 4X feature measured is named.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imaging.results import Code, Finding, Measurement, QualitativeEvaluation, Segment
from models.lung_nodules.candidates import Nodule
from models.lung_nodules.compare import Comparison
from models.lung_nodules.context import StudyContext
from models.lung_nodules.fleischner import applicability
from models.lung_nodules.lungrads import LungRads, NoduleStatus, NoduleType, Rule

LOCAL = "99AIWS"
NODULE = Code("27925004", "SCT", "Nodule")
LUNG = Code("39607008", "SCT", "Lung")
SIDES = {"right": Code("3341006", "SCT", "Right lung"), "left": Code("44029006", "SCT", "Left lung")}
MORPHOLOGY = Code("49755003", "SCT", "Morphologically abnormal structure")
DIAMETER = Code("81827009", "SCT", "Diameter")
LONG_AXIS = Code("103339001", "SCT", "Long Axis")
SHORT_AXIS = Code("103340004", "SCT", "Short Axis")
VOLUME = Code("118565006", "SCT", "Volume")
MEAN = Code("373098007", "SCT", "Mean")
SOLID_PART = Code("AIWS-LUNG-SOLID", LOCAL, "Solid component mean diameter")
GROWTH = Code("AIWS-LUNG-GROWTH", LOCAL, "Change in mean diameter since prior")
SOLID_GROWTH = Code("AIWS-LUNG-SGROW", LOCAL, "Change in solid component diameter since prior")
RULE = Code("AIWS-LR-RULE", LOCAL, "Lung-RADS rule applied")
INDICATION = Code("AIWS-LUNG-INDIC", LOCAL, "Indication")
FLEISCHNER = Code("AIWS-FLEISCHNER", LOCAL, "Fleischner 2017")
S_MODIFIER = Code("AIWS-LR-S", LOCAL, "Lung-RADS S modifier")
FEATURES_4X = Code("AIWS-LR-4X", LOCAL, "Lung-RADS 4X features measured")
#: What the outputs state about the S modifier and 4X (see :mod:`lungrads`).
S_NOT_ASSESSED = Code("LR-S-NA", LOCAL, "not assessed: findings outside lung nodules are out of scope")
ONLY_4X = Code("LR-4X-GGVDT", LOCAL, "ground-glass volume doubling <= 1 year only")
_STATUS_MEANING = {NoduleStatus.GROUND_GLASS_GROWING: "ground-glass part growing, solid part not"}
_INDICATION_MEANING = {"screening": "screening", "incidental": "incidental finding", "unknown": "not known"}
VDT = Code("AIWS-LUNG-VDT", LOCAL, "Volume doubling time")
NODULE_TYPE = Code("AIWS-LUNG-TYPE", LOCAL, "Nodule type")
STATUS = Code("AIWS-LUNG-STATUS", LOCAL, "Nodule status versus prior")
LUNG_RADS = Code("AIWS-LUNGRADS", LOCAL, "Lung-RADS v2022 category")
ZONE = Code("AIWS-LUNG-ZONE", LOCAL, "Lung zone (third of the lung height, not a lobe)")
#: Zone as a reader reads it: thirds of the lungs' height, never to be taken for a lobe ("middle" is not
#: the middle lobe).
ZONE_TEXT = {"upper": "upper zone", "middle": "mid zone (not a lobe)", "lower": "lower zone"}
EXAM = Code("AIWS-LUNG-EXAM", LOCAL, "Lung nodule exam assessment")
MM, MM3, DAYS = Code("mm", "UCUM", "millimeter"), Code("mm3", "UCUM", "cubic millimeter"), Code("d", "UCUM", "day")


def _local(value: str, meaning: str) -> Code:
    return Code(value, LOCAL, meaning)


def category_code(category: LungRads) -> Code:
    return _local(f"LR-{category.value}", f"Lung-RADS {category.value}")


@dataclass(frozen=True)
class AssessedNodule:
    """A measured nodule with its comparison to the prior and its Lung-RADS category."""

    nodule: Nodule
    comparison: Comparison
    category: LungRads
    mask: np.ndarray  # on the source volume grid
    index: int = 1
    rules: tuple[Rule, ...] = ()  # rules beyond the size table that set or kept the category

    @property
    def tracking_id(self) -> str:
        return f"nodule-{self.index}"

    def label(self) -> str:
        """``Solid nodule, right lung, mid zone (not a lobe), 12.4 mm, Lung-RADS 4A`` (the number is the legend's)."""
        n = self.nodule
        zone = ZONE_TEXT.get(n.location.zone, f"{n.location.zone} zone")
        return (f"{str(n.nodule_type).capitalize()} nodule, {n.location.side} lung, {zone}, "
                f"{n.mean_diameter_mm:.1f} mm, Lung-RADS {self.category.value}")

    def legend_lines(self) -> list[str]:
        """The nodule's lines for a legend: its label, then each rule that set or kept its category."""
        return [self.label(), *(rule.text for rule in self.rules)]


def _measurements(a: AssessedNodule) -> tuple[Measurement, ...]:
    n = a.nodule
    out = [
        Measurement(DIAMETER, n.mean_diameter_mm, MM, derivation=MEAN),
        Measurement(LONG_AXIS, n.long_axis_mm, MM),
        Measurement(SHORT_AXIS, n.short_axis_mm, MM),
        Measurement(VOLUME, n.volume_mm3, MM3),
    ]
    if n.nodule_type is NoduleType.PART_SOLID:
        out.append(Measurement(SOLID_PART, n.solid_diameter_mm, MM))
    c = a.comparison
    if c.delta_mean_mm is not None:
        out.append(Measurement(GROWTH, c.delta_mean_mm, MM))
    if c.delta_solid_mm is not None:
        out.append(Measurement(SOLID_GROWTH, c.delta_solid_mm, MM))
    if c.vdt_days is not None and math.isfinite(c.vdt_days):
        out.append(Measurement(VDT, round(c.vdt_days, 0), DAYS))
    return tuple(out)


def nodule_finding(a: AssessedNodule) -> Finding:
    n = a.nodule
    evaluations = (
        QualitativeEvaluation(NODULE_TYPE, _local(str(n.nodule_type), f"{n.nodule_type} nodule")),
        QualitativeEvaluation(ZONE, _local(n.location.zone, ZONE_TEXT.get(n.location.zone, f"{n.location.zone} zone"))),
        QualitativeEvaluation(STATUS, _local(str(a.comparison.status),
                                             _STATUS_MEANING.get(a.comparison.status, str(a.comparison.status)))),
        QualitativeEvaluation(LUNG_RADS, category_code(a.category)),
        *(QualitativeEvaluation(RULE, _local(rule.code, rule.text)) for rule in a.rules),
    )
    return Finding(tracking_id=a.tracking_id, finding_type=NODULE, finding_site=SIDES.get(n.location.side, LUNG),
                   measurements=_measurements(a), evaluations=evaluations, segment_number=a.index,
                   label=a.label())


def nodule_segment(a: AssessedNodule) -> Segment:
    return Segment(label=f"Nodule {a.index}", category=MORPHOLOGY, property_type=NODULE, mask=a.mask,
                   tracking_id=a.tracking_id, anatomic_region=SIDES.get(a.nodule.location.side, LUNG))


def exam_finding(category: LungRads, n_nodules: int, has_prior: bool,
                 context: StudyContext = StudyContext()) -> Finding:
    """The exam-level group: Lung-RADS exam category (1 when no nodule), indication, whether Fleischner
    was applied, and the scope statements (S modifier not assessed; the one 4X feature measured)."""
    status = "compared with prior" if has_prior else "baseline"
    _, fleischner_code, reason = applicability(context.indication, context.age_years)
    evaluations = (
        QualitativeEvaluation(LUNG_RADS, category_code(category)),
        QualitativeEvaluation(STATUS, _local(status.split()[0], status)),
        QualitativeEvaluation(INDICATION, _local(str(context.indication),
                                                 _INDICATION_MEANING[str(context.indication)])),
        QualitativeEvaluation(FLEISCHNER, _local(fleischner_code, reason)),
        QualitativeEvaluation(S_MODIFIER, S_NOT_ASSESSED),
        QualitativeEvaluation(FEATURES_4X, ONLY_4X),
    )
    return Finding(tracking_id="exam", finding_type=EXAM, finding_site=LUNG, evaluations=evaluations,
                   label=f"Exam Lung-RADS {category.value} ({n_nodules} nodule(s), {status})")


def summary(assessed: Sequence[AssessedNodule], exam: LungRads, fleischner: str,
            context: StudyContext = StudyContext()) -> dict[str, object]:
    """JSON-able summary kept in the ledger and shown by the API (no patient data: no age)."""
    return {
        "lung_rads": exam.value,
        "fleischner": fleischner,
        "indication": str(context.indication),
        "fleischner_risk": str(context.risk),
        "fleischner_applied": applicability(context.indication, context.age_years)[0],
        "scope": f"Lung-RADS S modifier {S_NOT_ASSESSED.meaning}; 4X features measured: {ONLY_4X.meaning}",
        "nodules": [{
            "id": a.tracking_id, "type": str(a.nodule.nodule_type), "mean_diameter_mm": a.nodule.mean_diameter_mm,
            "solid_diameter_mm": a.nodule.solid_diameter_mm, "volume_mm3": round(a.nodule.volume_mm3, 1),
            "centre_mm": [round(v, 1) for v in a.nodule.centre_mm], "side": a.nodule.location.side,
            "zone": a.nodule.location.zone, "status": str(a.comparison.status), "lung_rads": a.category.value,
            "rules": [rule.text for rule in a.rules], "legend": a.legend_lines(),
            "growth_mm": a.comparison.delta_mean_mm, "solid_growth_mm": a.comparison.delta_solid_mm,
            "vdt_days": None if a.comparison.vdt_days is None or not math.isfinite(a.comparison.vdt_days)
            else round(a.comparison.vdt_days),
            "score": round(a.nodule.score, 3),
        } for a in assessed],
    }


__all__ = ["AssessedNodule", "NoduleStatus", "exam_finding", "nodule_finding", "nodule_segment", "summary"]
