"""The prescription review: interactions, dose, renal, duplicate, allergy and contraindication
checks against the knowledge base, and the triage risk score."""
from __future__ import annotations

from dataclasses import dataclass

from plugins.pharmacy.kb import ATC_FULL, SEVERITY_ORDER, DoseRule, KnowledgeBase, atc_prefixes, normalise_words
from plugins.pharmacy.models import Alert, PharmacyInput, Prescription, RenalFunction, TriageRisk

_TYPE_ORDER = {t: i for i, t in enumerate(("contraindication", "allergy", "interaction", "renal", "dose", "duplicate"))}
SEVERITY_POINTS = {"contraindicated": 8.0, "high": 4.0, "moderate": 2.0, "low": 1.0}


@dataclass(frozen=True)
class Line:
    """A prescription resolved against the knowledge base (``atc`` None when unknown)."""

    index: int
    label: str
    atc: str | None
    known: bool
    rx: Prescription


def resolve(kb: KnowledgeBase, rx: Prescription, index: int) -> Line:
    atc = rx.atc or (kb.names.get(rx.drug.strip().lower()) if rx.drug else None)
    drug = kb.drugs.get(atc) if atc else None
    label = drug.name if drug else (rx.drug or atc or f"prescription {index}")
    return Line(index, label, atc, drug is not None, rx)


def _has_word(haystack: str, needle: str) -> bool:
    """Whole-word match (``penicillin`` in ``Penicillin (rash)``, not in ``penicillinase``)."""
    return normalise_words(needle) in normalise_words(haystack)


def interactions(kb: KnowledgeBase, lines: list[Line]) -> list[Alert]:
    alerts = []
    coded = [ln for ln in lines if ln.atc]
    for i, x in enumerate(coded):
        for y in coded[i + 1:]:
            hits = [r for pa in atc_prefixes(x.atc) for pb in atc_prefixes(y.atc)  # type: ignore[arg-type]
                    for r in kb.interaction_index.get((pa, pb), [])]
            if hits:
                r = min(hits, key=lambda h: SEVERITY_ORDER[h.severity])
                alerts.append(Alert(type="interaction", severity=r.severity, drugs=[x.label, y.label], level=r.level,  # type: ignore[arg-type]
                                    message=r.message, rule=f"interactions.csv {r.a} + {r.b} ({r.level})"))
    return alerts


def duplicates(kb: KnowledgeBase, lines: list[Line]) -> list[Alert]:
    alerts = []
    coded = [ln for ln in lines if ln.atc]
    for i, x in enumerate(coded):
        for y in coded[i + 1:]:
            if x.atc == y.atc:
                alerts.append(Alert(type="duplicate", severity="high", drugs=[x.label, y.label],
                                    message=f"{x.label} is prescribed twice", rule=f"same ATC {x.atc}"))
            elif x.atc[:5] == y.atc[:5] and x.atc[:5] not in kb.exemptions:  # type: ignore[index]
                alerts.append(Alert(type="duplicate", severity="moderate", drugs=[x.label, y.label],
                                    message=f"therapeutic duplication in ATC group {x.atc[:5]}",  # type: ignore[index]
                                    rule=f"same ATC level 4 {x.atc[:5]}"))  # type: ignore[index]
    return alerts


def _dose_rule(kb: KnowledgeBase, line: Line) -> DoseRule | None:
    rules = [r for r in kb.rules_for(kb.dose_index, line.atc) if r.route in (line.rx.route, "any")] if line.atc else []
    if not rules:
        return None
    return max(rules, key=lambda r: (len(r.atc), r.route != "any"))


def _over(kind: str, value: float, limit: float, unit: str) -> tuple[str, str] | None:
    if value <= limit + 1e-9:
        return None
    severity = "high" if value > 1.25 * limit else "moderate"
    return severity, f"{kind} {value:g} {unit} above the maximum {limit:g} {unit}"


def dose_checks(kb: KnowledgeBase, lines: list[Line], weight_kg: float | None) -> tuple[list[Alert], list[str]]:
    alerts, not_done = [], []
    for ln in lines:
        rule = _dose_rule(kb, ln)
        if rule is None or ln.rx.dose_mg is None:
            continue
        dose, freq = ln.rx.dose_mg, ln.rx.frequency_per_day
        daily = None if freq is None else dose * freq
        found = [_over("single dose", dose, rule.max_single_mg, "mg") if rule.max_single_mg else None,
                 _over("daily dose", daily, rule.max_daily_mg, "mg/day") if rule.max_daily_mg and daily else None]
        if rule.max_frequency_per_day and freq and freq > rule.max_frequency_per_day + 1e-9:
            found.append(("high", f"{freq:g} administrations/day above the maximum {rule.max_frequency_per_day:g}"))
        for per_kg, value, unit in ((rule.max_single_mg_per_kg, dose, "mg/kg"), (rule.max_daily_mg_per_kg, daily, "mg/kg/day")):
            if per_kg and value is not None:
                if weight_kg is None:
                    not_done.append(f"dose per kg of {ln.label}: weight_kg missing")
                else:
                    found.append(_over("dose", round(value / weight_kg, 3), per_kg, unit))
        if rule.max_daily_mg and daily is None:
            not_done.append(f"daily dose of {ln.label}: frequency_per_day missing")
        hits = [h for h in found if h is not None]
        if hits:  # one alert per prescription: the most severe finding first, all findings listed
            hits.sort(key=lambda h: SEVERITY_ORDER[h[0]])
            note = f" ({rule.note})" if rule.note else ""
            alerts.append(Alert(type="dose", severity=hits[0][0], drugs=[ln.label],  # type: ignore[arg-type]
                                message="; ".join(h[1] for h in hits) + note, rule=f"doses.csv {rule.atc} {rule.route}"))
    return alerts, not_done


def renal_checks(kb: KnowledgeBase, lines: list[Line], renal: RenalFunction,
                 weight_kg: float | None) -> tuple[list[Alert], list[str]]:
    alerts, not_done = [], []
    crcl = renal.creatinine_clearance_ml_min
    for ln in lines:
        rules = kb.rules_for(kb.renal_index, ln.atc) if ln.atc else []
        if rules and crcl is None:
            not_done.append(f"renal check of {ln.label}: creatinine clearance not computed ({renal.reason})")
            continue
        for r in rules:
            if not r.crcl_from <= crcl < r.crcl_below:  # type: ignore[operator]
                continue
            daily = None if ln.rx.dose_mg is None or ln.rx.frequency_per_day is None else \
                ln.rx.dose_mg * ln.rx.frequency_per_day
            limit = r.max_daily_mg if r.max_daily_mg else (
                r.max_daily_mg_per_kg * weight_kg if r.max_daily_mg_per_kg and weight_kg else None)
            if limit is not None and daily is not None and daily <= limit + 1e-9:
                continue
            shown = f"; prescribed {daily:g} mg/day" if daily is not None and limit is not None else ""
            alerts.append(Alert(type="renal", severity=r.severity, drugs=[ln.label],  # type: ignore[arg-type]
                                message=f"CrCl {crcl:g} ml/min: {r.message}{shown}",
                                rule=f"renal.csv {r.atc} {r.crcl_from:g}-{r.crcl_below:g} ml/min ({r.action})",
                                reference=r.reference or None))
    return alerts, not_done


def allergy_checks(kb: KnowledgeBase, lines: list[Line], allergies: list[str]) -> list[Alert]:
    found: dict[tuple[int, str], Alert] = {}
    for entry in allergies:
        direct = entry.strip().upper() if ATC_FULL.match(entry.strip().upper()) else kb.names.get(entry.strip().lower())
        for ln in lines:
            if not ln.atc:
                continue
            hits = [(r.severity, r.message, f"allergy_classes.csv {'/'.join(r.atcs)} ({r.relation})")
                    for r in kb.allergies
                    if any(_has_word(entry, a) for a in r.allergens) and any(ln.atc.startswith(p) for p in r.atcs)]
            if direct and ln.atc.startswith(direct):
                hits.append(("contraindicated", f"allergy to {entry} recorded", "recorded allergy to this drug"))
            for severity, message, rule in hits:
                key = (ln.index, entry)
                if key not in found or SEVERITY_ORDER[severity] < SEVERITY_ORDER[found[key].severity]:
                    found[key] = Alert(type="allergy", severity=severity, drugs=[ln.label],  # type: ignore[arg-type]
                                       message=f"{message} (recorded: {entry})", rule=rule)
    return list(found.values())


def contraindication_checks(kb: KnowledgeBase, lines: list[Line], data: PharmacyInput) -> tuple[list[Alert], list[str]]:
    alerts, not_done = [], []
    p = data.patient
    for ln in lines:
        for r in kb.rules_for(kb.contra_index, ln.atc) if ln.atc else []:
            if r.conditions and not any(_has_word(c, k) for c in p.conditions for k in r.conditions):
                continue
            if (r.min_age is not None or r.max_age is not None) and p.age is None:
                not_done.append(f"age rule for {ln.label}: age missing")
                continue
            if (r.min_age is not None and p.age < r.min_age) or (r.max_age is not None and p.age > r.max_age):  # type: ignore[operator]
                continue
            if r.sex is not None and p.sex != r.sex:
                continue
            alerts.append(Alert(type="contraindication", severity=r.severity, drugs=[ln.label],  # type: ignore[arg-type]
                                message=r.message, rule=f"contraindications.csv {r.atc} {';'.join(r.conditions)}".strip()))
    return alerts, not_done


def sort_alerts(alerts: list[Alert]) -> list[Alert]:
    """Most severe first; then contraindication, allergy, interaction, renal, dose, duplicate."""
    return sorted(alerts, key=lambda a: (SEVERITY_ORDER[a.severity], _TYPE_ORDER[a.type], a.drugs))


def triage(kb: KnowledgeBase, data: PharmacyInput, lines: list[Line], alerts: list[Alert],
           renal: RenalFunction) -> TriageRisk:
    """Score = alert points (contraindicated 8, high 4, moderate 2, low 1) + CrCl < 30: 3, < 50: 1
    + age >= 80: 2, >= 65: 1 + >= 10 lines: 2, >= 5: 1 + 1 per high-alert drug + 1 per unknown drug.
    Level: high >= 8, medium >= 3, low otherwise."""
    factors = [(SEVERITY_POINTS[a.severity], f"{a.severity} {a.type} alert ({', '.join(a.drugs)})") for a in alerts]
    crcl, age, n = renal.creatinine_clearance_ml_min, data.patient.age, len(lines)
    if crcl is not None and crcl < 50:
        factors.append((3.0 if crcl < 30 else 1.0, f"CrCl {crcl:g} ml/min"))
    if age is not None and age >= 65:
        factors.append((2.0 if age >= 80 else 1.0, f"age {age}"))
    if n >= 5:
        factors.append((2.0 if n >= 10 else 1.0, f"{n} prescriptions"))
    factors += [(1.0, f"high-alert drug {ln.label}") for ln in lines if ln.known and kb.drugs[ln.atc].high_alert]  # type: ignore[index]
    factors += [(1.0, f"not in the knowledge base: {ln.label}") for ln in lines if not ln.known]
    score = sum(points for points, _ in factors)
    level = "high" if score >= 8 else "medium" if score >= 3 else "low"
    return TriageRisk(score=score, level=level, factors=[f"+{p:g} {why}" for p, why in factors])
