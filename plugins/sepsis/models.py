"""Input and output models of the sepsis plugin (units in the field names or docstrings)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from plugins.base import InputModel, PluginOutput, field_error

#: SOFA vasopressor names; synonyms map to them.
VASOPRESSORS = ("dopamine", "dobutamine", "adrenaline", "noradrenaline")
_SYNONYMS = {"epinephrine": "adrenaline", "norepinephrine": "noradrenaline"}

Status = Literal["computed", "not computed"]


class SepsisObservation(InputModel):
    """One set of measurements taken at ``time``. Every measurement is optional; what a score needs
    and is missing makes that score (or component) "not computed", never a guessed normal value.

    Units: breaths/min, %, mmHg, beats/min, °C, mmHg (PaO2/FiO2 with FiO2 as a fraction),
    10³/µL (platelets, = 10⁹/L), mg/dL, µg/kg/min (vasopressors), ml/day, 10⁹/L (WBC), %.
    """

    time: datetime | None = None
    respiratory_rate: float | None = Field(default=None, ge=0, le=80)
    spo2: float | None = Field(default=None, ge=10, le=100, description="percent, not a fraction")
    spo2_scale: Literal[1, 2] = Field(default=1, description="NEWS2 SpO2 scale; 2 only for confirmed "
                                      "hypercapnic respiratory failure")
    on_oxygen: bool | None = None
    systolic_bp: float | None = Field(default=None, ge=20, le=300)
    heart_rate: float | None = Field(default=None, ge=0, le=300)
    consciousness: Literal["A", "C", "V", "P", "U"] | None = None
    temperature_c: float | None = Field(default=None, ge=25, le=45)
    gcs: int | None = Field(default=None, ge=3, le=15)
    pao2_fio2: float | None = Field(default=None, ge=10, le=700)
    on_respiratory_support: bool | None = None
    platelets: float | None = Field(default=None, ge=0, le=2000)
    bilirubin_mg_dl: float | None = Field(default=None, ge=0, le=60)
    map: float | None = Field(default=None, ge=10, le=250)
    vasopressors: dict[str, float] | None = None
    creatinine_mg_dl: float | None = Field(default=None, ge=0.05, le=30)
    urine_ml_day: float | None = Field(default=None, ge=0, le=20000)
    wbc: float | None = Field(default=None, ge=0, le=500)
    paco2: float | None = Field(default=None, ge=5, le=200)
    bands_percent: float | None = Field(default=None, ge=0, le=100)

    @field_validator("vasopressors")
    @classmethod
    def _vasopressors(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return None
        out: dict[str, float] = {}
        for raw, dose in value.items():
            name = _SYNONYMS.get(raw.strip().lower(), raw.strip().lower())
            if name not in VASOPRESSORS:
                raise field_error(raw, f"not a SOFA vasopressor ({', '.join(VASOPRESSORS)})")
            if not 0 <= dose <= 100:
                raise field_error(raw, "dose must be 0–100 µg/kg/min")
            out[name] = out.get(name, 0.0) + float(dose)
        return out


class SepsisInput(SepsisObservation):
    """The latest observation, flat, plus optional earlier ones (``history``) for the trend."""

    ref: str | None = None
    history: list[SepsisObservation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _times(self) -> SepsisInput:
        if not self.history:
            return self
        if self.time is None:
            raise field_error("time", "required when history is given")
        seen = {self.time}
        for i, obs in enumerate(self.history):
            if obs.time is None:
                raise field_error(f"history[{i}].time", "required for every observation of a series")
            if obs.time >= self.time:
                raise field_error(f"history[{i}].time", "must be earlier than the latest observation's time")
            if obs.time in seen:
                raise field_error(f"history[{i}].time", "two observations at the same time")
            seen.add(obs.time)
        return self

    def latest(self) -> SepsisObservation:
        """The flat (latest) observation; its values are already validated."""
        return SepsisObservation.model_construct(**{k: getattr(self, k) for k in SepsisObservation.model_fields})


class Component(BaseModel):
    """One scored parameter: the value used, its points and the band (rule) that gave them."""

    parameter: str
    value: Any = None
    points: int | None
    status: Status
    rule: str


class News2(BaseModel):
    total: int | None
    risk: Literal["low", "low-medium", "medium", "high"] | None
    status: Status
    lower_bound: int
    components: list[Component]
    missing: list[str]


class Qsofa(BaseModel):
    total: int | None
    positive: bool | None
    status: Status
    lower_bound: int
    components: list[Component]
    missing: list[str]


class Sirs(BaseModel):
    count: int | None
    positive: bool | None
    status: Status
    lower_bound: int
    components: list[Component]
    missing: list[str]


class Sofa(BaseModel):
    total: int | None
    status: Status
    lower_bound: int
    components: list[Component]
    missing: list[str]


class Contribution(BaseModel):
    parameter: str
    value: Any
    log_odds: float  # contribution to the log-odds, relative to the training cohort's mean


class Risk(BaseModel):
    status: Status
    probability: float | None
    horizon_hours: int
    model: str
    variant: str | None
    top_features: list[Contribution]
    missing: list[str]


class SeriesTrend(BaseModel):
    first: float | None
    last: float | None
    change: float | None
    slope_per_hour: float | None
    direction: Literal["rising", "falling", "stable", "not computed"]


class TrendPoint(BaseModel):
    time: datetime
    news2: int | None
    sofa: int | None
    probability: float | None


class Trend(BaseModel):
    hours: float
    points: list[TrendPoint]
    news2: SeriesTrend
    sofa: SeriesTrend
    probability: SeriesTrend
    sofa_rise_ge_2: bool | None


class SepsisOutput(PluginOutput):
    time: datetime | None
    news2: News2
    qsofa: Qsofa
    sirs: Sirs
    sofa: Sofa
    risk: Risk
    trend: Trend | None
