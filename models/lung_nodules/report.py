"""Nodules -> the writers' values: one SR finding and one SEG segment per nodule, plus the exam finding."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from imaging.results import Code, Finding, Measurement, QualitativeEvaluation, Segment
from models.lung_nodules.candidates import Nodule
from models.lung_nodules.compare import Comparison
from models.lung_nodules.lungrads import LungRads, NoduleStatus, NoduleType

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
VDT = Code("AIWS-LUNG-VDT", LOCAL, "Volume doubling time")
NODULE_TYPE = Code("AIWS-LUNG-TYPE", LOCAL, "Nodule type")
STATUS = Code("AIWS-LUNG-STATUS", LOCAL, "Nodule status versus prior")
LUNG_RADS = Code("AIWS-LUNGRADS", LOCAL, "Lung-RADS v2022 category")
ZONE = Code("AIWS-LUNG-ZONE", LOCAL, "Lung zone")
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

    @property
    def tracking_id(self) -> str:
        return f"nodule-{self.index}"

    def label(self) -> str:
        n = self.nodule
        return (f"#{self.index} {n.location.side} {n.location.zone} {n.nodule_type} "
                f"{n.mean_diameter_mm:.1f} mm, Lung-RADS {self.category.value}")


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
    if c.vdt_days is not None and math.isfinite(c.vdt_days):
        out.append(Measurement(VDT, round(c.vdt_days, 0), DAYS))
    return tuple(out)


def nodule_finding(a: AssessedNodule) -> Finding:
    n = a.nodule
    evaluations = (
        QualitativeEvaluation(NODULE_TYPE, _local(str(n.nodule_type), f"{n.nodule_type} nodule")),
        QualitativeEvaluation(ZONE, _local(n.location.zone, f"{n.location.zone} zone")),
        QualitativeEvaluation(STATUS, _local(str(a.comparison.status), str(a.comparison.status))),
        QualitativeEvaluation(LUNG_RADS, category_code(a.category)),
    )
    return Finding(tracking_id=a.tracking_id, finding_type=NODULE, finding_site=SIDES.get(n.location.side, LUNG),
                   measurements=_measurements(a), evaluations=evaluations, segment_number=a.index,
                   label=a.label())


def nodule_segment(a: AssessedNodule) -> Segment:
    return Segment(label=f"Nodule {a.index}", category=MORPHOLOGY, property_type=NODULE, mask=a.mask,
                   tracking_id=a.tracking_id, anatomic_region=SIDES.get(a.nodule.location.side, LUNG))


def exam_finding(category: LungRads, n_nodules: int, has_prior: bool) -> Finding:
    """The exam-level group: Lung-RADS exam category (1 when no nodule)."""
    status = "compared with prior" if has_prior else "baseline"
    return Finding(tracking_id="exam", finding_type=EXAM, finding_site=LUNG,
                   evaluations=(QualitativeEvaluation(LUNG_RADS, category_code(category)),
                                QualitativeEvaluation(STATUS, _local(status.split()[0], status))),
                   label=f"Exam Lung-RADS {category.value} ({n_nodules} nodule(s), {status})")


def summary(assessed: Sequence[AssessedNodule], exam: LungRads, fleischner: str) -> dict[str, object]:
    """JSON-able summary kept in the ledger and shown by the API."""
    return {
        "lung_rads": exam.value,
        "fleischner": fleischner,
        "nodules": [{
            "id": a.tracking_id, "type": str(a.nodule.nodule_type), "mean_diameter_mm": a.nodule.mean_diameter_mm,
            "solid_diameter_mm": a.nodule.solid_diameter_mm, "volume_mm3": round(a.nodule.volume_mm3, 1),
            "centre_mm": [round(v, 1) for v in a.nodule.centre_mm], "side": a.nodule.location.side,
            "zone": a.nodule.location.zone, "status": str(a.comparison.status), "lung_rads": a.category.value,
            "growth_mm": a.comparison.delta_mean_mm,
            "vdt_days": None if a.comparison.vdt_days is None or not math.isfinite(a.comparison.vdt_days)
            else round(a.comparison.vdt_days),
            "score": round(a.nodule.score, 3),
        } for a in assessed],
    }


__all__ = ["AssessedNodule", "NoduleStatus", "exam_finding", "nodule_finding", "nodule_segment", "summary"]
