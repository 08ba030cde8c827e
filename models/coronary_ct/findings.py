"""What the calcium pipeline found: lesions with their vessel, the scores, and a JSON summary."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.coronary_ct.calcium import CORONARIES, CalciumScore, Lesion, Vessel


@dataclass(frozen=True)
class CalciumFindings:
    """Every candidate lesion with its label (``Vessel.NONE`` = not counted), and the scores."""

    lesions: list[Lesion]
    labels: list[Vessel]
    score: CalciumScore
    algorithm: str  # "<pipeline> <version>, <model> v<model version>"
    #: why this acquisition departs from Agatston's (kVp, ECG gating), shown on every output
    acquisition_warnings: tuple[str, ...] = ()

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
        }
