"""Input and output models of the operating-room planning plugin (times in minutes, days as
integers from the first planning day 0)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from plugins.base import InputModel, PluginOutput, field_error

Objective = Literal["min_overtime", "min_cancellations"]


class Room(InputModel):
    """One room on one day: a session of ``capacity_minutes`` from minute 0; with ``min_overtime``
    it may run over by up to ``max_overtime_minutes``."""

    id: str = Field(min_length=1)
    day: int = Field(default=0, ge=0, le=366)
    capacity_minutes: int = Field(gt=0, le=1440)
    max_overtime_minutes: int = Field(default=240, ge=0, le=1440)


class Case(InputModel):
    """An elective case. Without ``duration_minutes`` the duration is predicted from the history
    (``procedure`` and ``surgeon``). ``priority`` 1 (most urgent) … 5; cancelling costs 6 − priority."""

    id: str = Field(min_length=1)
    surgeon: str = Field(min_length=1)
    duration_minutes: int | None = Field(default=None, gt=0, le=1440)
    procedure: str | None = None
    priority: int = Field(default=3, ge=1, le=5)
    earliest_day: int = Field(default=0, ge=0)
    latest_day: int | None = Field(default=None, ge=0)
    equipment: list[str] = Field(default_factory=list)


class Surgeon(InputModel):
    id: str = Field(min_length=1)
    days: list[int] | None = None  # available days; None = every day
    max_minutes_per_day: int | None = Field(default=None, gt=0)


class Equipment(InputModel):
    """Shared equipment (a cumulative resource): at most ``units`` cases use it at once on a day."""

    id: str = Field(min_length=1)
    units: int = Field(ge=1)


class HistoryRow(InputModel):
    procedure: str
    surgeon: str | None = None
    duration_minutes: float = Field(gt=0, le=1440)


class OrInput(InputModel):
    ref: str | None = None
    rooms: list[Room] = Field(min_length=1)
    cases: list[Case] = Field(min_length=1)
    surgeons: list[Surgeon] = Field(default_factory=list)
    equipment: list[Equipment] = Field(default_factory=list)
    objective: Objective = "min_overtime"
    time_limit_seconds: float = Field(default=5.0, gt=0, le=120)
    workers: int = Field(default=2, ge=1, le=32)
    duration_quantile: float = Field(default=0.5, ge=0.05, le=0.95)
    history: list[HistoryRow] | None = None  # None: the bundled history file

    @model_validator(mode="after")
    def _references(self) -> OrInput:
        seen_rooms: set[tuple[str, int]] = set()
        for i, room in enumerate(self.rooms):
            if (room.id, room.day) in seen_rooms:
                raise field_error(f"rooms[{i}]", f"room {room.id} listed twice for day {room.day}")
            seen_rooms.add((room.id, room.day))
        ids: set[str] = set()
        surgeons = {s.id for s in self.surgeons}
        equipment = {e.id for e in self.equipment}
        for i, case in enumerate(self.cases):
            if case.id in ids:
                raise field_error(f"cases[{i}].id", f"duplicate case id {case.id}")
            ids.add(case.id)
            if surgeons and case.surgeon not in surgeons:
                raise field_error(f"cases[{i}].surgeon", f"{case.surgeon} is not in surgeons")
            for e in case.equipment:
                if e not in equipment:
                    raise field_error(f"cases[{i}].equipment", f"{e} is not in equipment")
            if case.latest_day is not None and case.latest_day < case.earliest_day:
                raise field_error(f"cases[{i}].latest_day", "must be >= earliest_day")
            if case.duration_minutes is None and not case.procedure:
                raise field_error(f"cases[{i}].duration_minutes", "required when procedure is not given")
        return self


class Assignment(BaseModel):
    case: str
    room: str
    day: int
    start_minute: int
    end_minute: int
    duration_minutes: int
    duration_source: str
    surgeon: str


class RoomDay(BaseModel):
    room: str
    day: int
    capacity_minutes: int
    used_minutes: int
    overtime_minutes: int
    idle_minutes: int


class Cancelled(BaseModel):
    case: str
    priority: int
    reason: str


class SolverReport(BaseModel):
    engine: str
    status: Literal["optimal", "feasible", "infeasible", "unknown"]
    objective: Objective
    objective_value: float | None
    best_bound: float | None
    gap: float | None  # (value − bound) / max(1, |value|); 0 when optimal
    wall_seconds: float
    time_limit_seconds: float
    schedule_from: Literal["cp-sat", "greedy-lpt"]


class OrOutput(PluginOutput):
    assignments: list[Assignment]
    cancelled: list[Cancelled]
    overtime_minutes: int
    idle_minutes: int
    makespan_minutes: int
    room_days: list[RoomDay]
    solver: SolverReport
