"""The operating-room planning plugin: CP-SAT schedule of elective cases into room-days."""
from __future__ import annotations

import logging
from pathlib import Path

from plugins.base import Plugin, Provenance
from plugins.or_planning.durations import BUNDLED_HISTORY, History
from plugins.or_planning.greedy import greedy_lpt
from plugins.or_planning.models import OrInput, OrOutput, SolverReport
from plugins.or_planning.problem import Problem, report
from plugins.or_planning.solver import SolveParams, solve

LOGGER = logging.getLogger(__name__)

RULES = [
    "OR-Tools CP-SAT: optional intervals per (case, room-day); NoOverlap per room-day and per surgeon-day; "
    "Cumulative per shared equipment and day",
    "min_overtime: every case scheduled, total overtime minimised (overtime allowance per room-day); "
    "min_cancellations: no overtime, cancellation cost 6 - priority minimised",
    "all rooms' sessions start at minute 0 of their day; a surgeon's cases on one day never overlap",
    "durations without a value: history quantile per procedure and surgeon (>= 3 records), else per procedure",
    "baseline and hint: greedy longest-processing-time-first",
]


class OrPlanningPlugin(Plugin[OrInput, OrOutput]):
    """Assign elective cases to operating-room days (bundled history: ``data/history.csv``)."""

    name = "or_planning"
    version = "1.0.0"
    summary = "CP-SAT operating-room schedule (min_overtime | min_cancellations) with durations from history"
    input_model = OrInput
    output_model = OrOutput
    formats = frozenset({"json"})
    disclaimer = ("Planning aid: a proposed schedule for the planner to review and change; case durations are "
                  "predicted from past cases (a quantile of the history), so real durations will differ.")

    def __init__(self, history_path: Path = BUNDLED_HISTORY) -> None:
        self.history = History.bundled(history_path)

    def provenance(self) -> Provenance:
        return Provenance(model="OR-Tools CP-SAT schedule with history-quantile case durations",
                          model_version=self.version,
                          trained_on="case durations from the request's history, else the bundled "
                                     "data/history.csv (synthetic, see data/README.md)",
                          review_status="schedule checked against the greedy LPT baseline at each request")

    def run(self, data: OrInput) -> OrOutput:
        history = History.from_rows(data.history) if data.history is not None else self.history
        durations = [history.predict(c, i, data.duration_quantile) for i, c in enumerate(data.cases)]
        problem = Problem.build(data, durations)
        greedy, reasons = greedy_lpt(problem)
        solved = solve(problem, SolveParams(data.time_limit_seconds, data.workers), hint=greedy)
        status, value, source = solved.status, solved.objective_value, "cp-sat"
        schedule = solved.schedule
        if schedule is None or (value is not None and greedy.objective_value(problem) < value):
            schedule, source = greedy, "greedy-lpt"  # never report worse than the baseline
            if value is not None:
                value = float(greedy.objective_value(problem))
                status = "optimal" if solved.best_bound is not None and value <= solved.best_bound else "feasible"
        gap = None
        if value is not None and solved.best_bound is not None:
            gap = 0.0 if status == "optimal" else round((value - solved.best_bound) / max(1.0, abs(value)), 6)
        assignments, cancelled, room_days, overtime, idle, makespan = report(problem, schedule, reasons)
        solver = SolverReport(engine="OR-Tools CP-SAT", status=status, objective=data.objective,  # type: ignore[arg-type]
                              objective_value=value, best_bound=solved.best_bound, gap=gap,
                              wall_seconds=round(solved.wall_seconds, 3), time_limit_seconds=data.time_limit_seconds,
                              schedule_from=source)  # type: ignore[arg-type]
        explanation = [
            f"{len(assignments)} of {len(problem.jobs)} cases scheduled in {len(problem.slots)} room-days; "
            f"overtime {overtime} min, idle {idle} min, cancelled {len(cancelled)}",
            f"solver {status}" + (f" (gap {gap:.2%})" if gap else "") + f" in {solved.wall_seconds:.2f} s; "
            f"greedy LPT baseline objective {greedy.objective_value(problem)}",
        ]
        explanation += [f"case {j.id}: duration {j.duration} min ({j.duration_source})" for j in problem.jobs
                        if j.duration_source != "given"]
        if source == "greedy-lpt":
            explanation.append(f"solver status {solved.status}: the schedule shown is the greedy LPT one")
        return OrOutput(plugin=self.name, version=self.version, ref=data.ref, rules=RULES, explanation=explanation,
                        assignments=assignments, cancelled=cancelled, overtime_minutes=overtime, idle_minutes=idle,
                        makespan_minutes=makespan, room_days=room_days, solver=solver)
