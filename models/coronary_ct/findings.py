"""What the calcium pipeline found: lesions with their vessel, the scores, and a JSON summary."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from models.coronary_ct.calcium import CORONARIES, CalciumScore, Lesion, Vessel


class RejectedKind(str, Enum):
    """Why a calcified structure among the candidates was not scored."""

    BONE = "bone"  # ribs, sternum, spine, calcified cartilage: a large calcified structure
    NON_CORONARY = "non-coronary calcification"  # aortic valve/root/wall, mitral annulus, cartilage: the labeller


@dataclass(frozen=True)
class RejectedCalcium:
    """One calcified 3D structure (2D lesions that touch across slices) left out of the score.

    Location on the canonical volume: *slice_index* and *centre_rc* (row, column) of its largest 2D lesion.
    """

    kind: RejectedKind
    reason: str
    slice_index: int
    centre_rc: tuple[float, float]
    radius_px: float  # of a circle with the area of its largest 2D lesion
    lesion_count: int
    volume_mm3: float
    peak_hu: float


@dataclass(frozen=True)
class CalciumFindings:
    """Every candidate lesion with its label (``Vessel.NONE`` = not counted), and the scores."""

    lesions: list[Lesion]
    labels: list[Vessel]
    score: CalciumScore
    algorithm: str  # "<pipeline> <version>, <model> v<model version>"
    #: why this acquisition departs from Agatston's (kVp, ECG gating), shown on every output
    acquisition_warnings: tuple[str, ...] = ()
    #: calcified structures found but not scored (bone, valve, annulus, aortic wall), listed as "not scored"
    rejected: tuple[RejectedCalcium, ...] = ()

    def counted(self, vessel: Vessel) -> list[Lesion]:
        return [les for les, lab in zip(self.lesions, self.labels) if lab is vessel]

    def summary(self) -> dict[str, Any]:
        """Plain JSON values for the job's result row."""
        s = self.score

        def one(v: Any) -> dict[str, Any]:
            out = {"agatston": round(v.agatston, 1), "volume_mm3": round(v.volume_mm3, 1),
                   "lesions": v.lesion_count}
            if v.mass_mg is not None:
                out["mass_mg"] = round(v.mass_mg, 1)
            return out

        return {
            "total": one(s.total),
            "vessels": {v.value: one(s.vessels[v]) for v in CORONARIES},
            "cac_drs": s.cac_drs,
            "increment_mm": round(s.increment_mm, 3),
            "candidates": len(self.lesions),
            "acquisition_warnings": list(self.acquisition_warnings),
            "not_scored": {k.value: sum(1 for r in self.rejected if r.kind is k) for k in RejectedKind},
        }
