"""Greedy longest-processing-time-first baseline (and the solver's starting hint).

Cases in decreasing duration; each goes to the eligible room-day where it adds the least overtime
(min_overtime) or must fit in the session (min_cancellations), ties to the earliest end; it starts
when the room is free and its surgeon (and shared equipment) is too. A case that fits nowhere is
cancelled.
"""
from __future__ import annotations

from plugins.or_planning.problem import Job, Problem, Schedule

Busy = dict[tuple[str, int], list[tuple[int, int]]]


def _earliest(t: int, job: Job, day: int, surgeon_busy: Busy, equip_busy: Busy, units: dict[str, int]) -> int:
    """First start >= t free of the surgeon's other cases and within every equipment capacity."""
    while True:
        end = t + job.duration
        clash = [e for b, e in surgeon_busy.get((job.surgeon, day), []) if b < end and t < e]
        for eq in job.equipment:
            overlapping = [e for b, e in equip_busy.get((eq, day), []) if b < end and t < e]
            if len(overlapping) >= units[eq]:
                clash.append(min(overlapping))
        if not clash:
            return t
        t = min(clash)


def greedy_lpt(problem: Problem) -> tuple[Schedule, dict[int, str]]:
    """A feasible schedule and, for each cancelled job, the reason."""
    room_end = {s.index: 0 for s in problem.slots}
    surgeon_busy: Busy = {}
    equip_busy: Busy = {}
    surgeon_minutes: dict[tuple[str, int], int] = {}
    placed: dict[int, tuple[int, int]] = {}
    reasons: dict[int, str] = {}
    for job in sorted(problem.jobs, key=lambda j: (-j.duration, j.priority, j.index)):
        if not job.slots:
            reasons[job.index] = "no eligible room-day (day window, surgeon availability or session length)"
            continue
        best: tuple[tuple[int, int], int, int] | None = None
        for s in job.slots:
            slot = problem.slots[s]
            cap = problem.surgeon_max.get(job.surgeon)
            if cap is not None and surgeon_minutes.get((job.surgeon, slot.day), 0) + job.duration > cap:
                continue
            start = _earliest(room_end[s], job, slot.day, surgeon_busy, equip_busy, problem.equipment)
            end = start + job.duration
            if end > slot.limit:
                continue
            added = max(0, end - slot.capacity) - max(0, room_end[s] - slot.capacity)
            key = (added, end)
            if best is None or key < best[0]:
                best = (key, s, start)
        if best is None:
            reasons[job.index] = "does not fit in any eligible room-day"
            continue
        _, s, start = best
        day = problem.slots[s].day
        placed[job.index] = (s, start)
        room_end[s] = max(room_end[s], start + job.duration)
        surgeon_busy.setdefault((job.surgeon, day), []).append((start, start + job.duration))
        surgeon_minutes[(job.surgeon, day)] = surgeon_minutes.get((job.surgeon, day), 0) + job.duration
        for eq in job.equipment:
            equip_busy.setdefault((eq, day), []).append((start, start + job.duration))
    return Schedule(placed), reasons
