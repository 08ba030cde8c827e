"""What the cardiac pipeline found: label masks, volume curves, function, and the list of measures."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from models.cardiac_mri.function import CardiacFunction
from models.cardiac_mri.reference import Flag, flag


@dataclass(frozen=True)
class Measure:
    """One reported value: key, label, value, UCUM unit, and its reference flag (None: not applicable)."""

    key: str
    label: str
    value: float
    unit: str  # UCUM
    flag: Flag | None = None


@dataclass(frozen=True)
class CardiacFindings:
    function: CardiacFunction
    labels: np.ndarray  # (phases, slices, rows, columns) uint8: 0 bg, 1 LV pool, 2 LV myo, 3 RV pool
    lv_curve_ml: np.ndarray
    rv_curve_ml: np.ndarray
    trigger_times_ms: tuple[float, ...]
    sex: str | None
    algorithm: str

    def measures(self) -> list[Measure]:
        """Everything the SR and the summary report, in order; indexed values only with a BSA."""
        f, sex = self.function, self.sex
        lv = f.lv
        out = [
            Measure("LVEDV", "LV end-diastolic volume", lv.edv_ml, "ml"),
            Measure("LVESV", "LV end-systolic volume", lv.esv_ml, "ml"),
            Measure("LVSV", "LV stroke volume", lv.sv_ml, "ml"),
            Measure("LVEF", "LV ejection fraction", lv.ef_pct, "%", flag("EF", lv.ef_pct, sex)),
            Measure("LVM", "LV mass (end-diastole)", f.lv_mass_g, "g"),
        ]
        co = f.cardiac_output_l_min
        if co is not None:
            out.append(Measure("CO", "Cardiac output", co, "l/min"))
        if f.bsa_m2 is not None:
            edvi, esvi, massi = f.indexed(lv.edv_ml), f.indexed(lv.esv_ml), f.indexed(f.lv_mass_g)
            out += [
                Measure("LVEDVi", "LV EDV index", float(edvi or 0), "ml/m2", flag("EDVi", edvi, sex)),
                Measure("LVESVi", "LV ESV index", float(esvi or 0), "ml/m2", flag("ESVi", esvi, sex)),
                Measure("LVSVi", "LV SV index", float(f.indexed(lv.sv_ml) or 0), "ml/m2"),
                Measure("LVMi", "LV mass index", float(massi or 0), "g/m2", flag("LVMi", massi, sex)),
            ]
            if co is not None:
                out.append(Measure("CI", "Cardiac index", float(f.indexed(co) or 0), "l/min/m2"))
        if f.rv is not None:
            out += [
                Measure("RVEDV", "RV end-diastolic volume", f.rv.edv_ml, "ml", flag("RVEDV", f.rv.edv_ml, sex)),
                Measure("RVESV", "RV end-systolic volume", f.rv.esv_ml, "ml", flag("RVESV", f.rv.esv_ml, sex)),
                Measure("RVSV", "RV stroke volume", f.rv.sv_ml, "ml"),
                Measure("RVEF", "RV ejection fraction", f.rv.ef_pct, "%", flag("RVEF", f.rv.ef_pct, sex)),
            ]
            if f.bsa_m2 is not None:
                out.append(Measure("RVEDVi", "RV EDV index", float(f.indexed(f.rv.edv_ml) or 0), "ml/m2"))
        if f.heart_rate_bpm is not None:
            out.append(Measure("HR", "Heart rate", f.heart_rate_bpm, "/min"))
        if f.bsa_m2 is not None:
            out.append(Measure("BSA", "Body surface area (Mosteller)", f.bsa_m2, "m2"))
        return out

    def summary(self) -> dict[str, Any]:
        """Plain JSON values for the job's result row."""
        values: dict[str, Any] = {m.key: round(m.value, 2) for m in self.measures()}
        values["flags"] = {m.key: m.flag.value for m in self.measures() if m.flag is not None}
        values["ed_phase"], values["es_phase"] = self.function.lv.ed_phase, self.function.lv.es_phase
        if self.function.bsa_m2 is None:
            values["bsa_note"] = ("BSA not computed (Patient's Size in metres 0.3-2.5 and Patient's Weight 1-400 kg "
                                  "needed): no indexed values")
        return values
