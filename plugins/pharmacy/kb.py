"""The pharmacy knowledge base: versioned CSV files described in ``kb/SCHEMA.md``, validated on
load (errors name the file, row and column), held in frozen dataclasses."""
from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from plugins.errors import KnowledgeBaseError

DEFAULT_KB = Path(__file__).resolve().parent / "kb"

SEVERITIES = ("contraindicated", "high", "moderate", "low")  # most serious first
SEVERITY_ORDER = {s: i for i, s in enumerate(SEVERITIES)}
ANSM_LEVELS = {"contre-indication": "contraindicated", "association déconseillée": "high",
               "précaution d'emploi": "moderate", "à prendre en compte": "low"}
ROUTES = ("oral", "iv", "sc", "im", "inhaled", "transdermal", "rectal", "any")
RENAL_ACTIONS = ("contraindicated", "avoid", "reduce", "monitor")
_ATC_PREFIX = re.compile(r"^[A-Z](\d{2}([A-Z]([A-Z](\d{2})?)?)?)?$")
ATC_LEVEL_LENGTHS = (1, 3, 4, 5, 7)


@lru_cache(maxsize=4096)
def atc_prefixes(atc: str) -> tuple[str, ...]:
    """The ATC groups a code belongs to, level 1 to 5: B01AA03 → B, B01, B01A, B01AA, B01AA03."""
    return tuple(atc[:n] for n in ATC_LEVEL_LENGTHS if len(atc) >= n)


@lru_cache(maxsize=4096)
def normalise_words(text: str) -> str:
    """Lower-case words separated by single spaces, padded: for whole-word matching."""
    return " " + re.sub(r"[^a-z0-9]+", " ", text.lower()).strip() + " "
ATC_FULL = re.compile(r"^[A-Z]\d{2}[A-Z]{2}\d{2}$")


@dataclass(frozen=True)
class Drug:
    atc: str
    name: str
    synonyms: tuple[str, ...]
    high_alert: bool


@dataclass(frozen=True)
class DoseRule:
    atc: str
    route: str
    max_single_mg: float | None
    max_daily_mg: float | None
    max_single_mg_per_kg: float | None
    max_daily_mg_per_kg: float | None
    max_frequency_per_day: float | None
    note: str


@dataclass(frozen=True)
class CreatinineFloor:
    """Minimum-creatinine convention (manifest ``creatinine_floor``): from *min_age* years, a serum
    creatinine below *mg_dl* is raised to it before Cockcroft-Gault, because a low creatinine in
    the elderly reflects low muscle mass rather than a high clearance. *reason*: the manifest's
    justification, shown with the result."""

    min_age: int
    mg_dl: float
    reason: str

    def __post_init__(self) -> None:
        if not 18 <= self.min_age <= 120 or not 0.3 <= self.mg_dl <= 1.5:
            raise KnowledgeBaseError(f"manifest.json creatinine_floor: min_age {self.min_age} must be 18-120 and "
                                     f"mg_dl {self.mg_dl} within 0.3-1.5")

    @property
    def umol_l(self) -> float:
        """The same floor in µmol/L (1 mg/dL = 88.4 µmol/L)."""
        return self.mg_dl * 88.4


@dataclass(frozen=True)
class RenalRule:
    atc: str
    crcl_from: float
    crcl_below: float
    action: str
    max_daily_mg: float | None
    max_daily_mg_per_kg: float | None
    severity: str
    message: str
    reference: str = ""  # the product information (document, section, wording) the row encodes


@dataclass(frozen=True)
class Interaction:
    a: str
    b: str
    level: str
    severity: str
    message: str


@dataclass(frozen=True)
class AllergyRule:
    allergens: tuple[str, ...]
    atcs: tuple[str, ...]
    relation: str
    severity: str
    message: str


@dataclass(frozen=True)
class ContraRule:
    atc: str
    conditions: tuple[str, ...]
    min_age: int | None
    max_age: int | None
    sex: str | None
    severity: str
    message: str


class _Row:
    """One CSV row with typed getters whose errors name file, row and column."""

    def __init__(self, file: str, line: int, data: dict[str, str], kb: _Meta) -> None:
        self.file, self.line, self.data = file, line, data
        if None in data or any(v is None for v in data.values()):
            raise KnowledgeBaseError(f"{file} row {line}: the row does not have as many columns as the header")
        for col in ("source", "licence"):
            ids = self.list(col)
            known = kb.sources if col == "source" else kb.licences
            if not ids or any(i not in known for i in ids):
                raise self.error(col, f"must list ids declared in manifest.json {col}s ({', '.join(sorted(known))})")

    def error(self, col: str, rule: str) -> KnowledgeBaseError:
        return KnowledgeBaseError(f"{self.file} row {self.line}, column {col}: {rule} "
                                  f"(value {self.data.get(col)!r})")

    def text(self, col: str, required: bool = True) -> str:
        value = (self.data.get(col) or "").strip()
        if required and not value:
            raise self.error(col, "required")
        return value

    def list(self, col: str) -> tuple[str, ...]:
        return tuple(v.strip().lower() if col not in ("atc", "source", "licence") else v.strip()
                     for v in self.text(col, required=False).split(";") if v.strip())

    def number(self, col: str) -> float | None:
        value = self.text(col, required=False)
        if not value:
            return None
        try:
            number = float(value)
        except ValueError:
            raise self.error(col, "must be a number") from None
        if number < 0:
            raise self.error(col, "must be >= 0")
        return number

    def choice(self, col: str, options: tuple[str, ...] | dict[str, str]) -> str:
        value = self.text(col)
        if value not in options:
            raise self.error(col, f"must be one of {', '.join(options)}")
        return value

    def atc(self, col: str = "atc", value: str | None = None) -> str:
        code = (value if value is not None else self.text(col)).strip().upper()
        if not _ATC_PREFIX.match(code):
            raise self.error(col, "must be an ATC code or prefix (e.g. M01A, B01AA03)")
        return code


@dataclass(frozen=True)
class _Meta:
    directory: Path
    sources: frozenset[str]
    licences: frozenset[str]


def _rows(meta: _Meta, filename: str) -> Iterator[_Row]:
    path = meta.directory / filename
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for line, data in enumerate(csv.DictReader(fh), start=2):
                yield _Row(filename, line, data, meta)
    except OSError as exc:
        raise KnowledgeBaseError(f"pharmacy knowledge base: cannot read {path} ({exc.strerror})") from exc


def _drug(r: _Row) -> Drug:
    atc = r.atc()
    if not ATC_FULL.match(atc):
        raise r.error("atc", "a drug needs a full level-5 ATC code")
    return Drug(atc, r.text("name").lower(), r.list("synonyms"), r.choice("high_alert", ("0", "1")) == "1")


def _dose(r: _Row) -> DoseRule:
    rule = DoseRule(r.atc(), r.choice("route", ROUTES), r.number("max_single_mg"), r.number("max_daily_mg"),
                    r.number("max_single_mg_per_kg"), r.number("max_daily_mg_per_kg"),
                    r.number("max_frequency_per_day"), r.text("note", required=False))
    if rule.max_single_mg and rule.max_daily_mg and rule.max_single_mg > rule.max_daily_mg:
        raise r.error("max_single_mg", "must not exceed max_daily_mg")
    return rule


def _renal(r: _Row) -> RenalRule:
    lo, hi = r.number("crcl_from_ml_min") or 0.0, r.number("crcl_below_ml_min")
    if hi is None or hi <= lo:
        raise r.error("crcl_below_ml_min", "required and greater than crcl_from_ml_min")
    reference = r.text("reference", required="EU-SMPC" in r.list("source"))
    return RenalRule(r.atc(), lo, hi, r.choice("action", RENAL_ACTIONS), r.number("max_daily_mg"),
                     r.number("max_daily_mg_per_kg"), r.choice("severity", SEVERITIES), r.text("message"), reference)


def _interaction(r: _Row) -> Interaction:
    level = r.choice("level", ANSM_LEVELS)
    return Interaction(r.atc("a"), r.atc("b"), level, ANSM_LEVELS[level], r.text("message"))


def _allergy(r: _Row) -> AllergyRule:
    allergens, atcs = r.list("allergens"), tuple(r.atc("atc", a) for a in r.list("atc"))
    if not allergens or not atcs:
        raise r.error("allergens", "allergens and atc are both required")
    return AllergyRule(allergens, atcs, r.choice("relation", ("same", "cross")), r.choice("severity", SEVERITIES),
                       r.text("message"))


def _contra(r: _Row) -> ContraRule:
    ages = [r.number("min_age"), r.number("max_age")]
    sex = r.text("sex", required=False) or None
    if sex not in (None, "female", "male"):
        raise r.error("sex", "must be female, male or empty")
    rule = ContraRule(r.atc(), r.list("conditions"), *(None if a is None else int(a) for a in ages), sex,
                      r.choice("severity", SEVERITIES), r.text("message"))
    if not rule.conditions and rule.min_age is None and rule.max_age is None and rule.sex is None:
        raise r.error("conditions", "a rule needs conditions or an age/sex limit")
    return rule


def _index(rules: tuple[Any, ...]) -> dict[str, list[Any]]:
    index: dict[str, list[Any]] = {}
    for r in rules:
        index.setdefault(r.atc, []).append(r)
    return index


@dataclass(frozen=True)
class KnowledgeBase:
    """The validated knowledge base. *name*, *version* and *status* (its review status, in the
    manifest's words) are shown with every output; *creatinine_floor* is the manifest's
    minimum-creatinine convention (None when the manifest sets none)."""

    version: str
    drugs: dict[str, Drug]
    names: dict[str, str]  # lower-case name or synonym → ATC
    doses: tuple[DoseRule, ...]
    renal: tuple[RenalRule, ...]
    interactions: tuple[Interaction, ...]
    allergies: tuple[AllergyRule, ...]
    contraindications: tuple[ContraRule, ...]
    exemptions: dict[str, str]
    name: str = "pharmacy knowledge base"
    status: str = "review status not stated in manifest.json"
    creatinine_floor: CreatinineFloor | None = None

    @classmethod
    def load(cls, directory: Path = DEFAULT_KB) -> KnowledgeBase:
        """Read and validate every file of ``manifest.json``. Raises :class:`KnowledgeBaseError`."""
        try:
            manifest: dict[str, Any] = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
            files, version = manifest["files"], str(manifest["version"])
            meta = _Meta(directory, frozenset(manifest["sources"]), frozenset(manifest["licences"]))
            floor = manifest.get("creatinine_floor")
            creatinine_floor = None if floor is None else CreatinineFloor(int(floor["min_age"]), float(floor["mg_dl"]),
                                                                          str(floor["reason"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KnowledgeBaseError(f"pharmacy knowledge base {directory}/manifest.json: {exc!r}") from exc
        drugs: dict[str, Drug] = {}
        for row in _rows(meta, files["drugs"]):
            drug = _drug(row)
            if drug.atc in drugs:
                raise row.error("atc", "duplicate drug")
            drugs[drug.atc] = drug
        names = {n: d.atc for d in drugs.values() for n in (d.name, *d.synonyms)}
        exemptions = {r.atc("atc_group"): r.text("reason") for r in _rows(meta, files["duplicate_exemptions"])}
        kb = cls(version, drugs, names,
                 tuple(_dose(r) for r in _rows(meta, files["doses"])),
                 tuple(_renal(r) for r in _rows(meta, files["renal"])),
                 tuple(_interaction(r) for r in _rows(meta, files["interactions"])),
                 tuple(_allergy(r) for r in _rows(meta, files["allergy_classes"])),
                 tuple(_contra(r) for r in _rows(meta, files["contraindications"])), exemptions,
                 str(manifest.get("name", "pharmacy knowledge base")),
                 str(manifest.get("status", "review status not stated in manifest.json")), creatinine_floor)
        kb._check_prefixes()
        return kb

    # Indexes by ATC prefix: a prescription's rules are found by 5 dictionary look-ups, not by a scan.
    @cached_property
    def interaction_index(self) -> dict[tuple[str, str], list[Interaction]]:
        index: dict[tuple[str, str], list[Interaction]] = {}
        for r in self.interactions:
            index.setdefault((r.a, r.b), []).append(r)
            if r.a != r.b:
                index.setdefault((r.b, r.a), []).append(r)
        return index

    @cached_property
    def dose_index(self) -> dict[str, list[DoseRule]]:
        return _index(self.doses)

    @cached_property
    def renal_index(self) -> dict[str, list[RenalRule]]:
        return _index(self.renal)

    @cached_property
    def contra_index(self) -> dict[str, list[ContraRule]]:
        return _index(self.contraindications)

    def rules_for(self, index: dict[str, list[Any]], atc: str) -> list[Any]:
        """Rules of ``index`` whose ATC prefix contains ``atc``, most general first."""
        return [r for p in atc_prefixes(atc) for r in index.get(p, [])]

    def _check_prefixes(self) -> None:
        """Every rule must concern at least one known drug (a typo must not disable a rule silently)."""
        checks = [("doses.csv", r.atc) for r in self.doses] + [("renal.csv", r.atc) for r in self.renal]
        checks += [("interactions.csv", p) for r in self.interactions for p in (r.a, r.b)]
        checks += [("allergy_classes.csv", p) for r in self.allergies for p in r.atcs]
        checks += [("contraindications.csv", r.atc) for r in self.contraindications]
        checks += [("duplicate_exemptions.csv", g) for g in self.exemptions]
        for file, prefix in checks:
            if not any(atc.startswith(prefix) for atc in self.drugs):
                raise KnowledgeBaseError(f"{file}: ATC {prefix!r} matches no drug of drugs.csv")
