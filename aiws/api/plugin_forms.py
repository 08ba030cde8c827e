"""HTML forms generated from a plugin's pydantic input model, for the console (``/console/plugins/{name}``).

The model is the only description of a plugin's input: :func:`form_spec` walks its fields (type, bounds,
description, default) into a tree of :class:`FieldSpec` (one input), :class:`TableSpec` (a list of items:
a table of rows, or CSV pasted in its place) and :class:`GroupSpec` (a nested model). :func:`values_from_form`
turns the posted form back into the nested JSON document the API accepts, typing the text of each input
(``"23"`` → 23) and nothing more: every rule is checked by the model, on the same path as the API
(:func:`plugins.runner.run_plugin`), and its errors come back by field name to the input that caused them
(:func:`form_view`, whose input names are the runner's error paths: ``prescriptions[1].dose_mg``).
"""
from __future__ import annotations

import csv
import io
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from plugins.base import nest_dotted
from plugins.errors import FieldProblem

Kind = Literal["integer", "number", "text", "select", "bool", "datetime", "date", "list", "mapping"]

#: A table with more rows than this is shown as CSV text (a year of hourly counts is no table to type in).
TABLE_MAX_ROWS = 40
#: Blank rows under a table's rows (more after "add rows").
BLANK_ROWS = 1
ADD_ROWS = 3

#: Units of the fields whose name does not carry one (the models' docstrings list them).
UNITS = {"respiratory_rate": "breaths/min", "spo2": "%", "systolic_bp": "mmHg", "heart_rate": "beats/min",
         "map": "mmHg", "pao2_fio2": "mmHg", "platelets": "10³/µL", "wbc": "10⁹/L", "paco2": "mmHg",
         "gcs": "points", "vasopressors": "µg/kg/min", "count": "arrivals", "age": "years", "days": "day numbers",
         "units": "at once", "priority": "1 = most urgent", "arrival_rate_per_hour": "/h",
         "service_rate_per_hour": "/h per server", "day": "day number", "earliest_day": "day number",
         "latest_day": "day number", "max_minutes_per_day": "min/day"}
#: Unit suffixes of field names, longest first (``creatinine_mg_dl`` → mg/dL).
SUFFIXES = (("_umol_l", "µmol/L"), ("_mg_dl", "mg/dL"), ("_ml_day", "ml/day"), ("_per_day", "/day"),
            ("_per_hour", "/h"), ("_minutes", "min"), ("_seconds", "s"), ("_percent", "%"), ("_hours", "h"),
            ("_kg", "kg"), ("_cm", "cm"), ("_mg", "mg"), ("_c", "°C"))
#: How a value that is a list or a mapping is written in one input.
LIST_HELP = "several values: one per line or separated by commas"
MAPPING_HELP = "name=value pairs separated by commas, e.g. noradrenaline=0.05"


@dataclass(frozen=True)
class FieldSpec:
    """One input: *name* is its key in the parent object; *item_kind* types each value of a ``list``."""

    name: str
    label: str
    kind: Kind
    required: bool = False
    unit: str = ""
    bounds: str = ""
    help: str = ""
    choices: tuple[Any, ...] = ()
    item_kind: Kind = "text"
    default: Any = None


@dataclass(frozen=True)
class TableSpec:
    """A list of model items: one row per item, one column per field of the item (simple fields only)."""

    name: str
    label: str
    columns: tuple[FieldSpec, ...]
    required: bool = False
    min_rows: int = 0
    help: str = ""


@dataclass(frozen=True)
class GroupSpec:
    """A nested model (``patient``) or the input itself (name ``""``)."""

    name: str
    label: str
    children: tuple[FieldSpec | TableSpec | GroupSpec, ...]
    required: bool = True
    help: str = ""


# --- the spec, from the model -----------------------------------------------------------------------------

def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True); anything else → (tp, False)."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _scalar_kind(tp: Any) -> tuple[Kind, tuple[Any, ...]]:
    if get_origin(tp) is Literal:
        return "select", get_args(tp)
    if tp is bool:
        return "bool", ()
    if tp is int:
        return "integer", ()
    if tp is float:
        return "number", ()
    if tp is datetime:
        return "datetime", ()
    if tp is date:
        return "date", ()
    return "text", ()


def label_and_unit(name: str) -> tuple[str, str]:
    """``creatinine_mg_dl`` → ("Creatinine", "mg/dL"); ``respiratory_rate`` → ("Respiratory rate", "breaths/min")."""
    unit = UNITS.get(name, "")
    stem = name
    if not unit:
        for suffix, suffix_unit in SUFFIXES:
            if name.endswith(suffix) and len(name) > len(suffix):
                stem, unit = name[: -len(suffix)], suffix_unit
                break
    words = stem.replace("_", " ").strip()
    special = {"spo2": "SpO2", "gcs": "GCS", "map": "MAP (mean arterial pressure)", "wbc": "WBC",
               "paco2": "PaCO2", "pao2 fio2": "PaO2/FiO2", "atc": "ATC code", "id": "ID", "ref": "Reference",
               "spo2 scale": "SpO2 scale (NEWS2)", "systolic bp": "Systolic BP"}
    label = special.get(words, words[:1].upper() + words[1:])
    return label, unit


def _bounds(info: FieldInfo) -> tuple[str, int]:
    """The bounds of a field in words (``0–80``, ``> 0``) and its minimum length (lists)."""
    lo = hi = ""
    min_len = 0
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            lo = f"{meta.ge}"
        elif isinstance(meta, annotated_types.Gt):
            lo = f"> {meta.gt}"
        elif isinstance(meta, annotated_types.Le):
            hi = f"{meta.le}"
        elif isinstance(meta, annotated_types.Lt):
            hi = f"< {meta.lt}"
        elif isinstance(meta, annotated_types.MinLen):
            min_len = int(meta.min_length)
    if lo and hi:
        strict = lo.startswith(">") or hi.startswith("<")
        text = f"{lo}–{hi}" if not strict else f"{lo if lo.startswith('>') else '>= ' + lo}, " \
                                                f"{hi if hi.startswith('<') else '<= ' + hi}"
    elif lo:
        text = lo if lo.startswith(">") else f">= {lo}"
    elif hi:
        text = hi if hi.startswith("<") else f"<= {hi}"
    else:
        text = ""
    return text.replace("_", ""), min_len


def _default(info: FieldInfo) -> Any:
    if info.is_required() or info.default_factory is not None:
        return None
    return info.default


def _field(name: str, info: FieldInfo) -> FieldSpec | TableSpec | GroupSpec:
    tp, optional = _unwrap_optional(info.annotation)
    label, unit = label_and_unit(name)
    bounds, min_len = _bounds(info)
    required = info.is_required()
    help_text = info.description or ""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return GroupSpec(name, label, _children(tp), required=required and not optional, help=help_text)
    origin = get_origin(tp)
    if origin is list:
        (item,) = get_args(tp)
        if isinstance(item, type) and issubclass(item, BaseModel):
            columns = tuple(c for c in _children(item) if isinstance(c, FieldSpec))
            return TableSpec(name, label, columns, required=required, min_rows=min_len, help=help_text)
        item_kind, _ = _scalar_kind(item)
        return FieldSpec(name, label, "list", required, unit, bounds, help_text or LIST_HELP, item_kind=item_kind)
    if origin is dict:
        return FieldSpec(name, label, "mapping", required, unit, bounds, help_text or MAPPING_HELP)
    kind, choices = _scalar_kind(tp)
    return FieldSpec(name, label, kind, required, unit, bounds, help_text, choices, default=_default(info))


def _children(model: type[BaseModel]) -> tuple[FieldSpec | TableSpec | GroupSpec, ...]:
    return tuple(_field(name, info) for name, info in model.model_fields.items())


def form_spec(model: type[BaseModel]) -> GroupSpec:
    """The form of *model*: its fields in declaration order, nested models as groups, lists of models as tables."""
    return GroupSpec("", model.__name__, _children(model), help=" ".join((model.__doc__ or "").replace("``", "").split()))


# --- typing the posted text ------------------------------------------------------------------------------

_INT = re.compile(r"^[+-]?\d+$")


def _typed(kind: Kind, text: str, choices: Sequence[Any] = ()) -> Any:
    """The text of an input as the value the model expects; text that is not of the kind is passed as it
    is, so that the model's own message names the field (``Input should be a valid number``)."""
    if kind == "integer" and _INT.match(text):
        return int(text)
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "select":
        return next((c for c in choices if str(c) == text), text)
    if kind == "bool":
        return {"true": True, "yes": True, "false": False, "no": False}.get(text.lower(), text)
    return text


def _split(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[\n,;]", text) if part.strip()]


def coerce(spec: FieldSpec, raw: Any) -> Any:
    """The value of one input (text, or a CSV cell) for the model; ``None`` when empty."""
    if isinstance(raw, (dict, list)):
        return raw
    text = "" if raw is None else str(raw).strip()
    if not text:
        return None
    if spec.kind == "list":
        return [_typed(spec.item_kind, part) for part in _split(text)]
    if spec.kind == "mapping":
        pairs = _split(text)
        if not all("=" in p for p in pairs):
            return text
        return {k.strip(): _typed("number", v.strip()) for k, v in (p.split("=", 1) for p in pairs)}
    return _typed(spec.kind, text, spec.choices)


def csv_name(table: TableSpec, prefix: str = "") -> str:
    """The name of the text area where a table's rows may be pasted as CSV."""
    return f"{prefix}{table.name}__csv"


def _row_indices(form: Mapping[str, Any], base: str) -> list[int]:
    found = set()
    pattern = re.compile(re.escape(base) + r"\[(\d+)\]\.")
    for key in form:
        m = pattern.match(key)
        if m:
            found.add(int(m.group(1)))
    return sorted(found)


def _table_rows(table: TableSpec, form: Mapping[str, Any], base: str) -> list[dict[str, Any]]:
    pasted = str(form.get(csv_name(table, base[: -len(table.name)]), "") or "").strip()
    if pasted:
        rows: list[dict[str, Any]] = [nest_dotted(r) for r in csv.DictReader(io.StringIO(pasted))]
    else:
        rows = [{c.name: form.get(f"{base}[{i}].{c.name}") for c in table.columns} for i in _row_indices(form, base)]
    columns = {c.name: c for c in table.columns}
    out = []
    for row in rows:
        typed = {k: (coerce(columns[k], v) if k in columns else v) for k, v in row.items()}
        typed = {k: v for k, v in typed.items() if v is not None}
        if typed:  # a blank row is no item
            out.append(typed)
    return out


def _collect(group: GroupSpec, form: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for child in group.children:
        name = f"{prefix}{child.name}"
        if isinstance(child, GroupSpec):
            sub = _collect(child, form, f"{name}.")
            if sub or child.required:
                doc[child.name] = sub
        elif isinstance(child, TableSpec):
            rows = _table_rows(child, form, name)
            if rows or child.required:
                doc[child.name] = rows
        else:
            value = coerce(child, form.get(name))
            if value is not None:
                doc[child.name] = value
    return doc


def values_from_form(spec: GroupSpec, form: Mapping[str, Any]) -> dict[str, Any]:
    """The input document of a posted form: only the names of *spec* are read, empty inputs and blank rows
    are left out (the model's default applies), a table's pasted CSV replaces its rows."""
    return _collect(spec, form, "")


# --- the view: inputs with their current text and their errors --------------------------------------------

@dataclass
class InputView:
    spec: FieldSpec
    name: str
    text: str
    errors: list[str] = field(default_factory=list)


@dataclass
class TableView:
    spec: TableSpec
    name: str
    csv_name: str
    csv_text: str
    rows: list[list[InputView]]
    errors: list[str] = field(default_factory=list)


@dataclass
class GroupView:
    spec: GroupSpec
    name: str
    children: list[InputView | TableView | GroupView]
    errors: list[str] = field(default_factory=list)


@dataclass
class FormView:
    root: GroupView
    errors: list[str]  # every problem, "field: rule" (also shown beside its input where there is one)
    unplaced: list[str]  # problems of no input of the form (e.g. of an uploaded file)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # 58, as typed, not 58.0
    return str(value)


def table_csv(table: TableSpec, rows: Sequence[Mapping[str, Any]]) -> str:
    """*rows* as CSV with the table's columns (lists joined with ``;``, mappings as dotted columns)."""
    flat: list[dict[str, str]] = []
    for row in rows:
        out: dict[str, str] = {}
        for key, value in row.items():
            if isinstance(value, dict):
                out.update({f"{key}.{k}": _text(v) for k, v in value.items()})
            else:
                out[key] = "; ".join(_text(v) for v in value) if isinstance(value, list) else _text(value)
        flat.append(out)
    names = [c.name for c in table.columns]
    extra = sorted({k for r in flat for k in r} - set(names))
    used = [n for n in names if any(n in r for r in flat)] + extra
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=used, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buf.getvalue()


def _view(group: GroupSpec, doc: Mapping[str, Any], prefix: str, blanks: Mapping[str, int]) -> GroupView:
    children: list[InputView | TableView | GroupView] = []
    for child in group.children:
        name = f"{prefix}{child.name}"
        value = doc.get(child.name) if isinstance(doc, Mapping) else None
        if isinstance(child, GroupSpec):
            children.append(_view(child, value if isinstance(value, Mapping) else {}, f"{name}.", blanks))
        elif isinstance(child, TableSpec):
            items = [r for r in value if isinstance(r, Mapping)] if isinstance(value, list) else []
            long = len(items) > TABLE_MAX_ROWS
            shown = [] if long else items
            n_blank = blanks.get(name, BLANK_ROWS if shown or not long else 0)
            rows = [[InputView(c, f"{name}[{i}].{c.name}", _text(item.get(c.name))) for c in child.columns]
                    for i, item in enumerate([*shown, *({} for _ in range(n_blank))])]
            children.append(TableView(child, name, csv_name(child, prefix), table_csv(child, items) if long else "",
                                      rows))
        else:
            children.append(InputView(child, name, _text(value)))
    return GroupView(group, prefix.rstrip("."), children)


def _index(view: GroupView) -> dict[str, list[str]]:
    """Every name of the view (inputs, rows, tables, groups) → its error list."""
    out: dict[str, list[str]] = {view.name: view.errors}
    for child in view.children:
        if isinstance(child, GroupView):
            out.update(_index(child))
        elif isinstance(child, TableView):
            out[child.name] = child.errors
            for row in child.rows:
                for cell in row:
                    out[cell.name] = cell.errors
        else:
            out[child.name] = child.errors
    return out


def _parent(path: str) -> str:
    """``cases[2].id`` → ``cases[2]`` → ``cases`` → ``""``."""
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rsplit(".", 1)[0] if "." in path else ""


def form_view(spec: GroupSpec, doc: Mapping[str, Any], problems: Sequence[FieldProblem] = (),
              blanks: Mapping[str, int] | None = None) -> FormView:
    """The form filled with *doc*, each problem beside the input it names (or the nearest table or group:
    a row's problem, or a cell of CSV text, goes to its table)."""
    root = _view(spec, doc, "", blanks or {})
    index = _index(root)
    unplaced = []
    for problem in problems:
        message = f"{problem.rule}" + (f" (got {problem.value})" if problem.value is not None else "")
        path = problem.field
        if path.startswith("[") or path == "(input)":
            unplaced.append(str(problem))
            continue
        while path not in index and path:
            path = _parent(path)
        where = path if path else ""
        index[where].append(message if path == problem.field else f"{problem.field}: {message}")
    return FormView(root, [str(p) for p in problems], unplaced)


def rows_in_form(form: Mapping[str, Any], table: str) -> int:
    """How many rows of *table* the posted form had (for "add rows")."""
    return len(_row_indices(form, table))
