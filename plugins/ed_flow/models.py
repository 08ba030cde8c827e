"""Input and output models of the emergency-department flow plugin."""
from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from plugins.base import InputModel, PluginOutput, field_error

Status = Literal["computed", "not computed"]


class HourCount(InputModel):
    hour: datetime
    count: int = Field(ge=0, le=100_000)

    @field_validator("hour")
    @classmethod
    def _on_the_hour(cls, value: datetime) -> datetime:
        if value.minute or value.second or value.microsecond:
            raise ValueError("must be on the hour (minutes and seconds 0)")
        return value


class QueueInput(InputModel):
    """M/M/c staffing: λ and μ per hour (μ per server). Without ``arrival_rate_per_hour`` the
    forecast's hourly means are used (one server count per forecast hour)."""

    arrival_rate_per_hour: float | None = Field(default=None, gt=0)
    service_rate_per_hour: float = Field(gt=0)
    servers: int | None = Field(default=None, ge=1, le=10_000)
    target_wait_minutes: float | None = Field(default=None, ge=0)


class EdFlowInput(InputModel):
    """Arrival timestamps OR contiguous hourly counts, optional lengths of stay (hours), horizon."""

    ref: str | None = None
    arrivals: list[datetime] | None = None
    hourly_counts: list[HourCount] | None = None
    length_of_stay_hours: list[float] | None = None
    mean_length_of_stay_hours: float | None = Field(default=None, gt=0, le=24 * 30)
    horizon_hours: int = Field(default=168, ge=1, le=24 * 28)
    holidays: list[date] = Field(default_factory=list)
    backtest_origins: int = Field(default=4, ge=0, le=26)
    queue: QueueInput | None = None

    @field_validator("length_of_stay_hours")
    @classmethod
    def _los(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            for i, v in enumerate(value):
                if not 0 <= v <= 24 * 30:
                    raise field_error(f"[{i}]", "a length of stay must be 0–720 hours")
        return value

    @model_validator(mode="after")
    def _one_history(self) -> EdFlowInput:
        if self.arrivals is not None and self.hourly_counts is not None:
            raise field_error("hourly_counts", "give arrivals or hourly_counts, not both")
        if self.arrivals is None and self.hourly_counts is None and self.queue is None:
            raise field_error("arrivals", "arrivals, hourly_counts or queue is required")
        if self.length_of_stay_hours is not None and self.mean_length_of_stay_hours is not None:
            raise field_error("mean_length_of_stay_hours", "give length_of_stay_hours or its mean, not both")
        if self.queue and self.queue.arrival_rate_per_hour is None and self.arrivals is None \
                and self.hourly_counts is None:
            raise field_error("queue.arrival_rate_per_hour", "required without an arrival history")
        return self


class Interval(BaseModel):
    mean: float
    lo80: float
    hi80: float
    lo95: float
    hi95: float


class HourForecast(Interval):
    hour: datetime


class DayForecast(Interval):
    date: date
    hours: int  # hours of that day inside the horizon (24 = complete)


class Forecast(BaseModel):
    """The forecast served. *served*: ``model`` (the GLM) or ``seasonal_naive`` when the GLM did not
    beat the seasonal-naive baseline in the backtest; *model* names what produced the numbers;
    *notice* says, in words, which forecast is served and why (or that it could not be checked)."""

    status: Status
    reason: str | None = None
    model: str
    served: Literal["model", "seasonal_naive"] | None = None
    notice: str | None = None
    history_hours: int
    dispersion_alpha: float | None = None
    hourly: list[HourForecast] = Field(default_factory=list)
    daily: list[DayForecast] = Field(default_factory=list)


class Occupancy(BaseModel):
    status: Status
    reason: str | None = None
    mean_arrivals_per_hour: float | None
    mean_length_of_stay_hours: float | None
    expected_occupancy: float | None  # Little's law L = λW
    hourly: list[float] | None = None  # time-varying expectation from the LOS distribution
    peak: float | None = None


class MethodScores(BaseModel):
    mae_hourly: float
    mase_hourly: float
    mae_daily: float | None
    mape_daily_percent: float | None


class Backtest(BaseModel):
    status: Status
    reason: str | None = None
    origins: int = 0
    horizon_hours: int = 168
    model: MethodScores | None = None
    seasonal_naive: MethodScores | None = None
    beats_baseline: bool | None = None


class QueueMetrics(BaseModel):
    arrival_rate_per_hour: float
    servers: int
    stable: bool
    utilization: float
    p_wait: float
    lq: float | None
    wq_minutes: float | None


class Staffing(BaseModel):
    erlang_c: QueueMetrics | None = None
    target_wait_minutes: float | None = None
    min_servers: int | None = None
    hourly_min_servers: list[int] | None = None


class EdFlowOutput(PluginOutput):
    forecast: Forecast | None
    occupancy: Occupancy | None
    backtest: Backtest | None
    staffing: Staffing | None
