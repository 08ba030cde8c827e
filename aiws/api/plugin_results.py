"""What the console shows of a plugin's result, beyond the output itself: the pharmacy's alerts grouped per
prescription, the operating-room plan as a Gantt chart, the ED forecast as a plot over its history.

Functions here read the JSON output of a run (:meth:`plugins.runner.RunResult.body`, one dict per record) and
the input document the form sent; they compute nothing clinical.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from markupsafe import Markup

from aiws.api.plugin_charts import forecast_svg, gantt_svg, surgeon_colours

#: Alert severities, most severe first (the order of the pharmacy's rows).
SEVERITY_ORDER = ("contraindicated", "high", "moderate", "low")


@dataclass
class PrescriptionFlags:
    """One prescription line (or a drug named by an alert) and the alerts that name it."""

    label: str
    detail: str
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def worst(self) -> str:
        return min((a["severity"] for a in self.alerts), key=SEVERITY_ORDER.index, default="none")


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _names(prescription: Mapping[str, Any]) -> set[str]:
    return {str(v).strip().lower() for k, v in prescription.items() if k in ("drug", "atc") and v}


def pharmacy_flags(output: Mapping[str, Any], prescriptions: Sequence[Mapping[str, Any]] | None) -> \
        list[PrescriptionFlags]:
    """The alerts of *output* per prescription of the input (an alert naming two drugs is on both lines);
    alerts naming no prescription of the form (e.g. an uploaded batch) get a line per drug they name."""
    alerts = list(output.get("alerts") or [])
    rows: list[PrescriptionFlags] = []
    placed: set[int] = set()
    for p in prescriptions or []:
        names = _names(p)
        dose = " · ".join(str(x) for x in (
            f"{_num(p['dose_mg'])} mg" if p.get("dose_mg") is not None else None,
            f"{_num(p['frequency_per_day'])}/day" if p.get("frequency_per_day") is not None else None,
            p.get("route")) if x)
        mine = [i for i, a in enumerate(alerts) if names & {str(d).strip().lower() for d in a.get("drugs", [])}]
        placed.update(mine)
        rows.append(PrescriptionFlags(str(p.get("drug") or p.get("atc")), dose, [alerts[i] for i in mine]))
    by_drug: dict[str, PrescriptionFlags] = {}
    for i, alert in enumerate(alerts):
        if i in placed:
            continue
        for drug in alert.get("drugs") or ["(no drug named)"]:
            by_drug.setdefault(str(drug), PrescriptionFlags(str(drug), "")).alerts.append(alert)
    return rows + list(by_drug.values())


def _hour(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def ed_history(doc: Mapping[str, Any] | None) -> list[tuple[datetime, float]]:
    """The hourly arrival counts of an ED input document (``hourly_counts``, or ``arrivals`` counted per hour),
    in time order; [] when the document has neither."""
    if not doc:
        return []
    points: dict[datetime, float] = {}
    for row in doc.get("hourly_counts") or []:
        hour = _hour(row.get("hour")) if isinstance(row, Mapping) else None
        if hour is not None:
            points[hour] = float(row.get("count") or 0)
    for stamp in doc.get("arrivals") or []:
        t = _hour(stamp)
        if t is not None:
            floor = t.replace(minute=0, second=0, microsecond=0)
            points[floor] = points.get(floor, 0.0) + 1
    return sorted(points.items())


def document_of_upload(data: bytes, csv_upload: bool) -> dict[str, Any] | None:
    """An uploaded input as a document, for the charts only (the run itself reads the bytes): a JSON object,
    or ED-style CSV columns (``hour,count`` / ``arrival``); None for anything else."""
    try:
        if csv_upload:
            rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
            if rows and {"hour", "count"} <= set(rows[0]):
                return {"hourly_counts": rows}
            return {"arrivals": [r["arrival"] for r in rows]} if rows and "arrival" in rows[0] else None
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error):
        return None
    return doc if isinstance(doc, dict) and "resourceType" not in doc else None


@dataclass(frozen=True)
class ResultView:
    """One output as the template shows it: the output, and the plugin's extras (charts, groupings)."""

    output: dict[str, Any]
    flags: list[PrescriptionFlags] = field(default_factory=list)
    chart: Markup = Markup("")
    legend: list[tuple[str, str]] = field(default_factory=list)


def result_views(plugin: str, outputs: Sequence[dict[str, Any]], doc: Mapping[str, Any] | None) -> list[ResultView]:
    """The views of a run's *outputs*; *doc* is the input document (the form's, or an upload's when it parses)."""
    views = []
    single = len(outputs) == 1
    for out in outputs:
        if plugin == "pharmacy":
            prescriptions = (doc or {}).get("prescriptions") if single else None
            views.append(ResultView(out, flags=pharmacy_flags(out, prescriptions)))
        elif plugin == "or_planning":
            assignments = out.get("assignments") or []
            views.append(ResultView(out, chart=gantt_svg(assignments, out.get("room_days") or []),
                                    legend=surgeon_colours(assignments)))
        elif plugin == "ed_flow":
            hourly = (out.get("forecast") or {}).get("hourly") or []
            history = ed_history(doc) if single else []
            views.append(ResultView(out, chart=forecast_svg(history, hourly) if (hourly or history) else Markup("")))
        else:
            views.append(ResultView(out))
    return views
