"""Input and output models of the pharmacy plugin."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from plugins.base import InputModel, PluginOutput, field_error
from plugins.pharmacy.kb import ATC_FULL, ROUTES

_ROUTE_SYNONYMS = {
    "po": "oral", "per os": "oral", "by mouth": "oral", "oral": "oral", "enteral": "oral",
    "iv": "iv", "intravenous": "iv", "ivse": "iv", "sc": "sc", "subcutaneous": "sc", "subcut": "sc",
    "im": "im", "intramuscular": "im", "inh": "inhaled", "inhaled": "inhaled", "inhalation": "inhaled",
    "td": "transdermal", "transdermal": "transdermal", "patch": "transdermal", "pr": "rectal", "rectal": "rectal",
    "any": "any",
}
_SEX = {"f": "female", "female": "female", "woman": "female", "m": "male", "male": "male", "man": "male",
        "other": "other", "unknown": "unknown"}

Severity = Literal["contraindicated", "high", "moderate", "low"]
AlertType = Literal["interaction", "dose", "renal", "duplicate", "allergy", "contraindication"]


class Patient(InputModel):
    """Age (years), sex, weight (kg), height (cm), serum creatinine in mg/dL OR µmol/L, conditions."""

    age: int | None = Field(default=None, ge=0, le=130)
    sex: Literal["female", "male", "other", "unknown"] | None = None
    weight_kg: float | None = Field(default=None, ge=0.5, le=400)
    height_cm: float | None = Field(default=None, ge=30, le=250)
    creatinine_mg_dl: float | None = Field(default=None, ge=0.05, le=30)
    creatinine_umol_l: float | None = Field(default=None, ge=5, le=2500)
    conditions: list[str] = Field(default_factory=list)

    @field_validator("sex", mode="before")
    @classmethod
    def _sex(cls, value: object) -> object:
        return _SEX.get(value.strip().lower(), value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_creatinine(self) -> Patient:
        if self.creatinine_mg_dl is not None and self.creatinine_umol_l is not None:
            raise field_error("creatinine_umol_l", "give creatinine_mg_dl or creatinine_umol_l, not both")
        return self


class Prescription(InputModel):
    """One line: drug name and/or ATC code, dose per administration (mg), administrations per day
    (0.143 = once weekly), route."""

    drug: str | None = None
    atc: str | None = None
    dose_mg: float | None = Field(default=None, gt=0, le=100_000)
    frequency_per_day: float | None = Field(default=None, gt=0, le=48)
    route: str = "any"

    @field_validator("atc")
    @classmethod
    def _atc(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if not ATC_FULL.match(code):
            raise ValueError("must be a level-5 WHO ATC code such as B01AA03")
        return code

    @field_validator("route")
    @classmethod
    def _route(cls, value: str) -> str:
        route = _ROUTE_SYNONYMS.get(value.strip().lower())
        if route is None:
            raise ValueError(f"unknown route; use one of {', '.join(ROUTES)} (or po, intravenous, subcutaneous …)")
        return route

    @model_validator(mode="after")
    def _named(self) -> Prescription:
        if not (self.drug and self.drug.strip()) and self.atc is None:
            raise field_error("drug", "a prescription needs a drug name or an ATC code")
        return self


class PharmacyInput(InputModel):
    ref: str | None = None
    patient: Patient
    prescriptions: list[Prescription] = Field(min_length=1)
    allergies: list[str] = Field(default_factory=list)


class RenalFunction(BaseModel):
    status: Literal["computed", "not computed"]
    creatinine_clearance_ml_min: float | None
    band: Literal["normal (>= 80)", "mild (50-80)", "moderate (30-50)", "severe (< 30)"] | None
    formula: str
    weight_kg_used: float | None
    weight_basis: str | None
    reason: str | None = None
    creatinine_basis: str | None = None  # set when the creatinine used differs from the measured one


class Alert(BaseModel):
    type: AlertType
    severity: Severity
    drugs: list[str]
    message: str
    rule: str  # the knowledge-base file and row key that fired
    reference: str | None = None  # the product information the row encodes (renal.csv ``reference``)
    level: str | None = None  # ANSM level for interactions


class TriageRisk(BaseModel):
    score: float
    level: Literal["high", "medium", "low"]
    factors: list[str]


class PharmacyOutput(PluginOutput):
    kb_version: str
    creatinine_clearance_ml_min: float | None
    renal_function: RenalFunction
    alerts: list[Alert]
    unknown_drugs: list[str]
    checks_not_done: list[str]
    risk: TriageRisk
    triage_rank: int | None = None  # 1 = review first, among the records of one batch
