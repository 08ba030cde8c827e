"""The pharmacy plugin: creatinine clearance, prescription alerts sorted by severity, triage risk."""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plugins.base import Plugin, Provenance, nest_dotted
from plugins.pharmacy import review
from plugins.pharmacy.fhir_map import pharmacy_inputs
from plugins.pharmacy.kb import DEFAULT_KB, KnowledgeBase
from plugins.pharmacy.models import PharmacyInput, PharmacyOutput
from plugins.pharmacy.renal import cockcroft_gault

LOGGER = logging.getLogger(__name__)

_PATIENT_COLUMNS = ("age", "sex", "weight_kg", "height_cm", "creatinine_mg_dl", "creatinine_umol_l")
_RX_COLUMNS = ("drug", "atc", "dose_mg", "frequency_per_day", "route")


class PharmacyPlugin(Plugin[PharmacyInput, PharmacyOutput]):
    """Prescription review against a versioned knowledge base (``kb/``, schema in ``kb/SCHEMA.md``)."""

    name = "pharmacy"
    version = "1.0.0"
    summary = ("Cockcroft-Gault clearance; interaction, dose, renal, duplicate, allergy and contraindication "
               "alerts sorted by severity; triage risk rank")
    input_model = PharmacyInput
    output_model = PharmacyOutput

    def __init__(self, kb_dir: Path = DEFAULT_KB) -> None:
        self.kb = KnowledgeBase.load(kb_dir)

    @property
    def disclaimer(self) -> str:  # type: ignore[override]
        """Decision support for a pharmacist, with the knowledge base's own review status."""
        return (f"Prescription review support for a pharmacist, not a prescription. The alerts come from the "
                f"knowledge base {self.kb.name} {self.kb.version}, whose status is: {self.kb.status}. "
                "No alert does not mean that a prescription is safe.")

    def provenance(self) -> Provenance:
        return Provenance(knowledge_base=self.kb.name, knowledge_base_version=self.kb.version,
                          review_status=self.kb.status)

    def run(self, data: PharmacyInput) -> PharmacyOutput:
        kb = self.kb
        renal = cockcroft_gault(data.patient, kb.creatinine_floor)
        lines = [review.resolve(kb, rx, i) for i, rx in enumerate(data.prescriptions)]
        dose_alerts, dose_nd = review.dose_checks(kb, lines, data.patient.weight_kg)
        renal_alerts, renal_nd = review.renal_checks(kb, lines, renal, data.patient.weight_kg)
        contra_alerts, contra_nd = review.contraindication_checks(kb, lines, data)
        alerts = review.sort_alerts(review.interactions(kb, lines) + review.duplicates(kb, lines) + dose_alerts
                                    + renal_alerts + review.allergy_checks(kb, lines, data.allergies) + contra_alerts)
        risk = review.triage(kb, data, lines, alerts, renal)
        unknown = [ln.label for ln in lines if not ln.known]
        crcl = renal.creatinine_clearance_ml_min
        explanation = [f"creatinine clearance {crcl:g} ml/min ({renal.band}; weight {renal.weight_basis}"
                       + (f"; {renal.creatinine_basis})" if renal.creatinine_basis else ")")
                       if crcl is not None else f"creatinine clearance not computed: {renal.reason}"]
        explanation += [f"{a.severity} {a.type}: {', '.join(a.drugs)}: {a.message}" for a in alerts]
        explanation.append(f"triage risk {risk.level} (score {risk.score:g}: {'; '.join(risk.factors) or 'no factor'})")
        return PharmacyOutput(
            plugin=self.name, version=self.version, ref=data.ref, kb_version=kb.version,
            rules=[f"knowledge base {kb.version} (kb/manifest.json; sources and licences per row)", renal.formula,
                   *([f"minimum creatinine {kb.creatinine_floor.mg_dl:g} mg/dL "
                      f"({kb.creatinine_floor.umol_l:.1f} umol/L) from age {kb.creatinine_floor.min_age}"]
                     if kb.creatinine_floor else []),
                   "obesity (BMI >= 30): adjusted body weight, IBW by Devine", "interaction levels: ANSM thesaurus",
                   "duplicate: same ATC level-4 group", review.triage.__doc__.split("\n")[0].strip()],  # type: ignore[union-attr]
            explanation=explanation, creatinine_clearance_ml_min=crcl, renal_function=renal, alerts=alerts,
            unknown_drugs=unknown, checks_not_done=sorted(set(dose_nd + renal_nd + contra_nd)), risk=risk)

    def run_batch(self, items: Sequence[PharmacyInput]) -> list[PharmacyOutput]:
        """Outputs in input order, each with ``triage_rank`` (1 = highest risk score; ties keep order)
        when there are several records."""
        outputs = [self.run(item) for item in items]
        if len(outputs) < 2:
            return outputs
        order = sorted(range(len(outputs)), key=lambda i: (-outputs[i].risk.score, i))
        for rank, i in enumerate(order, start=1):
            outputs[i].triage_rank = rank
        return outputs

    def from_fhir(self, bundle: Any) -> list[dict[str, Any]]:
        return pharmacy_inputs(bundle)

    def from_csv_rows(self, rows: list[dict[str, str]]) -> list[dict[str, Any]]:
        """One row per prescription: patient columns (``age``, ``sex``, ``weight_kg``, ``height_cm``,
        ``creatinine_mg_dl`` | ``creatinine_umol_l``, ``conditions`` and ``allergies`` as ``;`` lists)
        repeated on the rows of one ``ref``; prescription columns ``drug, atc, dose_mg,
        frequency_per_day, route``. Rows without ``ref`` are one review each."""
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for n, row in enumerate(rows):
            flat = nest_dotted(row)
            groups[flat.get("ref") or f"\x00row{n}"].append(flat)
        out = []
        for ref, recs in groups.items():
            first = recs[0]
            patient = {k: first[k] for k in _PATIENT_COLUMNS if k in first}
            patient["conditions"] = [c.strip() for c in first.get("conditions", "").split(";") if c.strip()]
            doc: dict[str, Any] = {"patient": patient,
                                   "allergies": [a.strip() for a in first.get("allergies", "").split(";") if a.strip()],
                                   "prescriptions": [{k: r[k] for k in _RX_COLUMNS if k in r} for r in recs]}
            if not ref.startswith("\x00"):
                doc["ref"] = ref
            unknown = set(first) - set(_PATIENT_COLUMNS) - set(_RX_COLUMNS) - {"ref", "conditions", "allergies"}
            doc.update({k: first[k] for k in unknown})  # refused by the model, naming the column
            out.append(doc)
        return out
