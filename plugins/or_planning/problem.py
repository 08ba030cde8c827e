"""The planning problem in solver-ready form, schedules, and their metrics."""
from __future__ import annotations

from dataclasses import dataclass

from plugins.or_planning.models import Assignment, Cancelled, Objective, OrInput, RoomDay


@dataclass(frozen=True)
class Slot:
    """A room on a day: the session runs from minute 0 to ``capacity``; ``limit`` is the latest
    allowed end (capacity, plus the overtime allowance when minimising overtime)."""

    index: int
    room: str
    day: int
    capacity: int
    limit: int


@dataclass(frozen=True)
class Job:
    index: int
    id: str
    surgeon: str
    duration: int
    duration_source: str
    priority: int
    equipment: tuple[str, ...]
    slots: tuple[int, ...]  # eligible slot indices

    @property
    def cancel_cost(self) -> int:
        return 6 - self.priority


@dataclass(frozen=True)
class Problem:
    slots: tuple[Slot, ...]
    jobs: tuple[Job, ...]
    objective: Objective
    surgeon_max: dict[str, int]
    equipment: dict[str, int]

    @classmethod
    def build(cls, data: OrInput, durations: list[tuple[int, str]]) -> Problem:
        with_ot = data.objective == "min_overtime"
        slots = tuple(Slot(i, r.id, r.day, r.capacity_minutes, r.capacity_minutes + (r.max_overtime_minutes if with_ot else 0))
                      for i, r in enumerate(data.rooms))
        available = {s.id: (None if s.days is None else set(s.days)) for s in data.surgeons}
        jobs = []
        for i, (case, (dur, how)) in enumerate(zip(data.cases, durations, strict=True)):
            days = available.get(case.surgeon)
            eligible = tuple(s.index for s in slots
                             if s.day >= case.earliest_day and (case.latest_day is None or s.day <= case.latest_day)
                             and (days is None or s.day in days) and dur <= s.limit)
            jobs.append(Job(i, case.id, case.surgeon, dur, how, case.priority, tuple(case.equipment), eligible))
        return cls(slots, tuple(jobs), data.objective,
                   {s.id: s.max_minutes_per_day for s in data.surgeons if s.max_minutes_per_day},
                   {e.id: e.units for e in data.equipment})

    @property
    def days(self) -> list[int]:
        return sorted({s.day for s in self.slots})


@dataclass(frozen=True)
class Schedule:
    """job index → (slot index, start minute); absent jobs are cancelled."""

    placed: dict[int, tuple[int, int]]

    def overtime(self, problem: Problem) -> int:
        ends: dict[int, int] = {}
        for j, (s, start) in self.placed.items():
            ends[s] = max(ends.get(s, 0), start + problem.jobs[j].duration)
        return sum(max(0, end - problem.slots[s].capacity) for s, end in ends.items())

    def cancellation_cost(self, problem: Problem) -> int:
        return sum(job.cancel_cost for job in problem.jobs if job.index not in self.placed)

    def objective_value(self, problem: Problem) -> int:
        return self.overtime(problem) if problem.objective == "min_overtime" else self.cancellation_cost(problem)


def report(problem: Problem, schedule: Schedule, reasons: dict[int, str]) -> tuple[
        list[Assignment], list[Cancelled], list[RoomDay], int, int, int]:
    """(assignments, cancelled, room-days, overtime, idle, makespan) of a schedule."""
    assignments = []
    busy: dict[int, list[tuple[int, int]]] = {s.index: [] for s in problem.slots}
    for j, (s, start) in sorted(schedule.placed.items(), key=lambda kv: (problem.slots[kv[1][0]].day,
                                                                          problem.slots[kv[1][0]].room, kv[1][1])):
        job, slot = problem.jobs[j], problem.slots[s]
        busy[s].append((start, start + job.duration))
        assignments.append(Assignment(case=job.id, room=slot.room, day=slot.day, start_minute=start,
                                      end_minute=start + job.duration, duration_minutes=job.duration,
                                      duration_source=job.duration_source, surgeon=job.surgeon))
    room_days = []
    for slot in problem.slots:
        used = sum(max(0, min(e, slot.capacity) - max(b, 0)) for b, e in busy[slot.index])
        end = max((e for _, e in busy[slot.index]), default=0)
        room_days.append(RoomDay(room=slot.room, day=slot.day, capacity_minutes=slot.capacity, used_minutes=used,
                                 overtime_minutes=max(0, end - slot.capacity), idle_minutes=slot.capacity - used))
    cancelled = [Cancelled(case=job.id, priority=job.priority,
                           reason=reasons.get(job.index, "not scheduled by the optimiser (capacity)"))
                 for job in problem.jobs if job.index not in schedule.placed]
    makespan = max((a.end_minute for a in assignments), default=0)
    return (assignments, cancelled, room_days, sum(r.overtime_minutes for r in room_days),
            sum(r.idle_minutes for r in room_days), makespan)
