"""CP-SAT model: optional fixed-size intervals per (case, eligible room-day); NoOverlap per room-day
and per surgeon-day (all rooms' sessions start at minute 0 of the day); Cumulative per shared
equipment and day; per-room-day overtime. Objectives: ``min_overtime`` (every case scheduled,
minimise total overtime minutes) or ``min_cancellations`` (no overtime, minimise the cancellation
cost 6 − priority). The greedy LPT schedule is given as a hint.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ortools.sat.python import cp_model

from plugins.errors import SolverError
from plugins.or_planning.problem import Problem, Schedule

LOGGER = logging.getLogger(__name__)

_STATUS = {cp_model.OPTIMAL: "optimal", cp_model.FEASIBLE: "feasible", cp_model.INFEASIBLE: "infeasible",
           cp_model.UNKNOWN: "unknown"}


@dataclass(frozen=True)
class SolveParams:
    time_limit_seconds: float = 5.0
    workers: int = 2
    seed: int = 0


@dataclass(frozen=True)
class Solved:
    status: str
    schedule: Schedule | None
    objective_value: float | None
    best_bound: float | None
    wall_seconds: float


def _build(problem: Problem, hint: Schedule | None) -> tuple[cp_model.CpModel, dict[tuple[int, int], tuple[cp_model.IntVar, cp_model.IntVar]], list[cp_model.IntVar]]:
    m = cp_model.CpModel()
    x: dict[tuple[int, int], tuple[cp_model.IntVar, cp_model.IntVar]] = {}
    by_slot: dict[int, list[cp_model.IntervalVar]] = {}
    by_surgeon_day: dict[tuple[str, int], list[tuple[cp_model.IntervalVar, cp_model.IntVar, int]]] = {}
    by_equip_day: dict[tuple[str, int], list[cp_model.IntervalVar]] = {}
    overtime = [m.NewIntVar(0, max(0, s.limit - s.capacity), f"ot_{s.index}") for s in problem.slots]
    cancels = []
    for job in problem.jobs:
        lits = []
        for s in job.slots:
            slot = problem.slots[s]
            lit = m.NewBoolVar(f"x_{job.index}_{s}")
            start = m.NewIntVar(0, slot.limit - job.duration, f"s_{job.index}_{s}")
            iv = m.NewOptionalFixedSizeIntervalVar(start, job.duration, lit, f"i_{job.index}_{s}")
            x[(job.index, s)] = (lit, start)
            lits.append(lit)
            by_slot.setdefault(s, []).append(iv)
            by_surgeon_day.setdefault((job.surgeon, slot.day), []).append((iv, lit, job.duration))
            for eq in job.equipment:
                by_equip_day.setdefault((eq, slot.day), []).append(iv)
            if slot.limit > slot.capacity:
                m.Add(start + job.duration - slot.capacity <= overtime[s]).OnlyEnforceIf(lit)
        if problem.objective == "min_cancellations":
            cancel = m.NewBoolVar(f"cancel_{job.index}")
            cancels.append((cancel, job.cancel_cost))
            m.AddExactlyOne([*lits, cancel])
        else:
            m.AddExactlyOne(lits)  # infeasible when a job has no slot: reported, not hidden
    for ivs in by_slot.values():
        m.AddNoOverlap(ivs)
    for s in problem.slots:  # redundant load cut (busy time <= session + overtime): a strong LP bound
        load = [x[(j.index, s.index)][0] * j.duration for j in problem.jobs if (j.index, s.index) in x]
        if load:
            m.Add(sum(load) <= s.capacity + overtime[s.index])
    for (surgeon, _), items in by_surgeon_day.items():
        m.AddNoOverlap([iv for iv, _, _ in items])
        cap = problem.surgeon_max.get(surgeon)
        if cap is not None:
            m.Add(sum(lit * d for _, lit, d in items) <= cap)
    for (eq, _), ivs in by_equip_day.items():
        m.AddCumulative(ivs, [1] * len(ivs), problem.equipment[eq])
    if problem.objective == "min_cancellations":
        m.Minimize(sum(c * w for c, w in cancels))
    else:
        m.Minimize(sum(overtime))
    if hint is not None:
        _hint(m, problem, hint, x, overtime, [c for c, _ in cancels])
    return m, x, overtime


def _hint(m: cp_model.CpModel, problem: Problem, hint: Schedule,
          x: dict[tuple[int, int], tuple[cp_model.IntVar, cp_model.IntVar]], overtime: list[cp_model.IntVar],
          cancels: list[cp_model.IntVar]) -> None:
    """A complete hint (every variable), which CP-SAT can take as its first solution."""
    for (j, s), (lit, start) in x.items():
        placed = hint.placed.get(j)
        chosen = placed is not None and placed[0] == s
        m.AddHint(lit, chosen)
        m.AddHint(start, placed[1] if chosen else 0)  # type: ignore[index]
    ends: dict[int, int] = {}
    for j, (s, start) in hint.placed.items():
        ends[s] = max(ends.get(s, 0), start + problem.jobs[j].duration)
    for slot, var in zip(problem.slots, overtime, strict=True):
        m.AddHint(var, max(0, ends.get(slot.index, 0) - slot.capacity))
    for job, var in zip(problem.jobs, cancels, strict=False):
        m.AddHint(var, job.index not in hint.placed)


def solve(problem: Problem, params: SolveParams, hint: Schedule | None = None) -> Solved:
    """Solve within the time limit. Raises :class:`SolverError` only for an invalid model."""
    if problem.objective == "min_overtime" and any(not j.slots for j in problem.jobs):
        return Solved("infeasible", None, None, None, 0.0)
    model, x, _ = _build(problem, hint)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = params.time_limit_seconds
    solver.parameters.num_workers = params.workers
    solver.parameters.random_seed = params.seed
    # presolve may otherwise transform a complete, feasible hint into an infeasible one (seen with
    # symmetry detection on identical rooms), losing the greedy start
    solver.parameters.keep_all_feasible_solutions_in_presolve = hint is not None
    t0 = time.perf_counter()
    code = solver.Solve(model)
    wall = time.perf_counter() - t0
    if code == cp_model.MODEL_INVALID:
        raise SolverError(f"or_planning: CP-SAT model invalid ({model.Validate()})")
    status = _STATUS[code]
    if status in ("infeasible", "unknown"):
        return Solved(status, None, None, None, wall)
    placed = {j: (s, int(solver.Value(start))) for (j, s), (lit, start) in x.items() if solver.Value(lit)}
    return Solved(status, Schedule(placed), float(solver.ObjectiveValue()), float(solver.BestObjectiveBound()), wall)
