"""Phantom families per task and the cross-family evaluation of a shipped version (issue 28).

Family ``a`` is each task's original generator (``training/<task>/phantom.py``), family ``b`` the
independent one (``training/<task>/phantom_b.py``); both write the same truth format. The version is run
through ONNX Runtime exactly as the service runs it, on a few phantoms of each family (unseen evaluation
seeds, >= 10000), and each family gets its own row of metrics with the issue's quality bars, met or not.
:func:`table_lines` prints the rows; :func:`card_rows` gives them to the model card's
"train family -> evaluation family" section (:func:`training.publish.render_card`).

Baseline of the shipped versions (trained on family A; 2026-12-07, CPU, seeds 10000...; the retraining's
starting point):

- lung_nodules 6, 3 scans each (90 mm slabs, 2-4 nodules of 5-16 mm): A: sensitivity(>=5 mm)@1 FP 0.917,
  FP/scan 0.33, exam Lung-RADS agreement 1.0, diameter MAE 1.15 mm (a round juxtapleural nodule missed);
  B: 0.833, FP/scan 3.33, agreement 0.33, MAE 1.08 mm (a perifissural nodule missed).
- mammo_detector 1, 8 exams each: A: density agreement 0.75 (within one grade 1.0), mass sensitivity 1.0 at
  0.16 FP/image, 3 marks in lesion-free breasts; B: 0.375 (0.5), 0.5 at 5.19 FP/image, 78 marks in lesion-free
  breasts, percent-dense MAE 45 points (the unseen textures read as fat). Family A's exams there were seeds
  10000 up, which version 1 was trained on. On its unseen evaluation seeds (:data:`EVAL_SEED_STARTS`; 30016-30047
  and 60016-60047, 32 exams each): A: 0.97 (1.0), mass sensitivity 1.0 at 0.20 FP/image, 12 marks in lesion-free
  breasts; B: 0.91 (1.0), 0.50 at 5.38 FP/image, 376 marks, percent-dense MAE 5.2 points. Before the fat level of
  an extremely dense breast came from its subcutaneous shell, B read 0.81 (0.91), MAE 11.1 points: every breast
  above 75 % dense read low, its fat reference on glandular tissue.
- cardiac_cine_segmenter 1, 3 cines each: A: EF within 3 points 3/3, EDV/ESV max error 1.6 / 1.8 %;
  B: 1/3, 31 / 78 % (EF off by up to 24.5 points). Its successor, version 2 (trained on A+B), on 16 cines each
  beside version 1 (python -m training.cardiac_mri.cross_family): A: 16/16, max 2.0 / 2.6 % (v1 16/16, 2.7 / 3.5 %);
  B: 13/16, 9.2 / 39.1 % (v1 4/16, 39.4 / 96.3 %). Version 3 (basal slices drawn in half the family-B samples),
  on fresh seeds 10200-10231, 32 cines each beside version 2: A: 32/32, max 3.8 / 5.4 % (v2 32/32, 2.7 / 8.6 %);
  B: 32/32, 12.6 / 18.8 % (v2 24/32, 19.2 / 105.2 %).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LOGGER = logging.getLogger(__name__)

FAMILIES = ("a", "b")
#: Tasks with two phantom families (coronary_ct's are "A" and "B" in training/coronary_ct; a and b here).
TASKS = ("lung_nodules", "mammography", "cardiac_mri", "coronary_ct")
MODELS = {"lung_nodules": "lung_nodules", "mammography": "mammo_detector", "cardiac_mri": "cardiac_cine_segmenter",
          "coronary_ct": "coronary_calcium_labeller"}
EVAL_SEED_START = 10_000
#: Where a task's unseen evaluation seeds start, per family, when not at :data:`EVAL_SEED_START`: mammography
#: version 1 was trained on family-A seeds 10000-10079 (its card's provenance), so its cross-family rows on
#: 10000 up measured family A on training exams; its evaluation seeds are 30000 up, family B's 60000 up
#: (``training/mammography/configs/families.toml``, :mod:`training.mammography.compare`).
EVAL_SEED_STARTS: dict[str, dict[str, int]] = {"mammography": {"a": 30_000, "b": 60_000}}


def eval_seed_start(task: str, family: str) -> int:
    """The first unseen evaluation seed of *task*'s phantom *family* (:data:`EVAL_SEED_STARTS`)."""
    return EVAL_SEED_STARTS.get(task, {}).get(family, EVAL_SEED_START)


#: The quality bars of issue 28 (name -> (bar, "min" | "max" | "below"): at least, at most, strictly below).
BARS: dict[str, dict[str, tuple[float, str]]] = {
    "lung_nodules": {"sensitivity_5mm_at_1fp": (0.90, "min"), "lung_rads_exam_agreement": (0.90, "min"),
                     "diameter_mae_mm": (1.0, "max")},
    "mammography": {"density_agreement": (0.85, "min"), "density_within_one_grade": (1.0, "min"),
                    "mass_sensitivity": (0.90, "min"), "mass_fp_per_image": (0.5, "max"),
                    "marks_in_lesion_free_breasts": (0.0, "max")},
    "cardiac_mri": {"ef_within_3_points": (0.95, "min"), "edv_max_abs_error_pct": (10.0, "max"),
                    "esv_max_abs_error_pct": (10.0, "max")},
    "coronary_ct": {"vessel_agatston_within_10pct": (0.90, "min"), "lm_lesion_recall": (0.95, "min"),
                    "lad_lesion_recall": (0.95, "min"), "lcx_lesion_recall": (0.95, "min"),
                    "rca_lesion_recall": (0.95, "min"), "cac_drs_agreement": (0.90, "min"),
                    "confounder_counted_phantoms": (0.02, "below")},
}


class FamilyError(ValueError):
    """The cross-family evaluation cannot run as asked (unknown task or family)."""


def families(choice: str) -> tuple[str, ...]:
    """``a``, ``b`` or ``both`` as a tuple of families."""
    if choice == "both":
        return FAMILIES
    if choice not in FAMILIES:
        raise FamilyError(f"family {choice!r}: one of a, b, both")
    return (choice,)


def bars(task: str, measured: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, (bar, kind) in BARS[task].items():
        value = measured.get(name)
        ok = value is not None and np.isfinite(value) and (
            value >= bar if kind == "min" else value < bar if kind == "below" else value <= bar)
        out[name] = {"value": None if value is None else round(float(value), 4), "bar": bar, "met": bool(ok)}
    return out


# --- lung nodules -----------------------------------------------------------------------------------------

def _lung_phantom(family: str, seed: int) -> Any:
    if family == "a":
        from training.lung_nodules.phantom import PhantomConfig, generate_phantom
        return generate_phantom(seed, PhantomConfig(z_extent_mm=90.0, max_matrix=320, nodules=(2, 4),
                                                    diameter_mm=(5.0, 16.0), round_juxtapleural=0.3))
    from training.lung_nodules.phantom_b import PhantomConfigB, generate_phantom_b
    return generate_phantom_b(seed, PhantomConfigB(z_extent_mm=90.0, max_matrix=320, nodules=(2, 4),
                                                   diameter_mm=(5.0, 16.0)))


def _lung(repo: Path, version: int | None, family: str, seeds: Sequence[int]) -> dict[str, Any]:
    import dataclasses

    from models.lung_nodules.inference import candidate_settings, detect_nodules
    from models.runtime.ort import OnnxRuntime
    from models.runtime.repository import ModelRepository
    from training.lung_nodules.metrics import ScanResult, detection_record, dice, froc, summarize

    runtime = OnnxRuntime(ModelRepository(repo), device="cpu")
    model = MODELS["lung_nodules"]
    version = version or runtime.resolve_version(model)
    settings = candidate_settings(runtime, model, version)
    scans = []
    for seed in seeds:
        p = _lung_phantom(family, seed)
        det = detect_nodules(runtime, p.hu, p.grid, model, version, dataclasses.replace(settings, min_score=0.0))
        pred = np.zeros(p.hu.shape, dtype=bool)
        for n in det.nodules:
            if n.score >= settings.min_score:
                pred[n.box] |= n.mask
        scans.append(ScanResult(f"{family}{seed}", p.nodules, [detection_record(n) for n in det.nodules],
                                dice(pred, p.labels > 0)))
    op = summarize(scans, settings.min_score)
    curve = froc(scans)["points"]
    measured = {"sensitivity_5mm_at_1fp": curve["1.0"]["sensitivity"], "sensitivity_5mm": op["sensitivity_5mm"],
                "fp_per_scan": op["fp_per_scan"], "lung_rads_exam_agreement": op["lung_rads_exam_agreement"],
                "diameter_mae_mm": op["diameter_mae_mm"], "nodules": op["nodules"], "nodules_5mm": op["nodules_5mm"]}
    missed = [t["kind"] for s in scans for t in s.truth if not any(
        np.linalg.norm(np.subtract(f["centre_mm"], t["centre_mm"])) <= max(t["mean_diameter_mm"] / 2, 3.0)
        for f in s.found if f["score"] >= settings.min_score)]
    return {"version": version, "measured": measured, "missed_kinds": missed}


# --- mammography ------------------------------------------------------------------------------------------

def _mammo(repo: Path, version: int | None, family: str, seeds: Sequence[int]) -> dict[str, Any]:
    from models.mammography.analysis import analyse_exam, analyse_view
    from models.mammography.density import birads_density, exam_density
    from models.mammography.inference import load_calibration, relative_input, runtime_predictor
    from models.runtime import RuntimeSettings, make_runtime
    from training.mammography.evaluate import ExamRecord, ViewRecord, evaluate
    from training.mammography.phantom import PHANTOM_WINDOW, PhantomConfig, make_exam, to_working
    from training.mammography.phantom_b import make_exam_b

    model = MODELS["mammography"]
    records, one_grade, lesion_free_marks = [], [], 0
    with make_runtime(RuntimeSettings(model_repository=repo, device="cpu", intra_op_threads=1)) as runtime:
        version = version or runtime.resolve_version(model)
        predict = runtime_predictor(runtime, model, version)
        calibration = load_calibration(runtime, model, version)
        relative = relative_input(runtime, model, version)  # the version's own network input
        for seed in seeds:
            exam = make_exam(seed, PhantomConfig(lesion_rate=0.5)) if family == "a" else make_exam_b(seed)
            window = getattr(exam, "window", PHANTOM_WINDOW)
            analyses, views = {}, []
            for key, native in exam.views.items():
                pv = to_working(native)
                a = analyse_view(pv.image, pv.laterality, pv.view, window, predict, relative)
                analyses[key] = a
                views.append(ViewRecord(pv.laterality, pv.view, pv.spacing_mm, a.percent_dense,
                                        native.percent_dense, a.candidates, pv.lesions, a.peak_logits))
                if not any(v.lesions for (lat, _), v in exam.views.items() if lat == pv.laterality):
                    lesion_free_marks += sum(1 for c in a.candidates if c.kind == "mass" and calibration.marked(c))
            records.append(ExamRecord(seed, tuple(views), dict(exam.breast_percent_dense),
                                      analyse_exam(analyses, calibration)))
            pred = exam_density({(v.laterality, v.view): v.percent_dense for v in views})
            order = "abcd"
            want = max(birads_density(pd) for pd in exam.breast_percent_dense.values())
            one_grade.append(abs(order.index(pred.category) - order.index(want)) <= 1)
    m = evaluate(records, calibration)
    measured = {"density_agreement": m.density_agreement_exam, "density_within_one_grade": float(np.mean(one_grade)),
                "mass_sensitivity": m.mass["sensitivity"], "mass_fp_per_image": m.mass["fp_per_image"],
                "mass_lesion_views": m.mass["lesions"], "calcification_sensitivity": m.calcification["sensitivity"],
                "percent_dense_mae": m.percent_dense_mae, "marks_in_lesion_free_breasts": lesion_free_marks}
    return {"version": version, "measured": measured}


# --- cardiac MRI ------------------------------------------------------------------------------------------

def _cardiac(repo: Path, version: int | None, family: str, seeds: Sequence[int]) -> dict[str, Any]:
    from models.cardiac_mri.function import cardiac_function
    from models.runtime import RuntimeSettings, make_runtime
    from training.cardiac_mri.evaluate import evaluate_phantom, segment_cine
    from training.cardiac_mri.export import SIGNATURE
    from training.cardiac_mri.phantom import masks_from_labels
    from training.cardiac_mri.phantom_b import make_cine_b

    rows = []
    with make_runtime(RuntimeSettings(model_repository=repo, device="cpu")) as runtime:
        version = version or runtime.resolve_version(SIGNATURE.model)

        def predict(x: np.ndarray) -> np.ndarray:
            return runtime.infer(SIGNATURE.model, {SIGNATURE.input_name: x}, version=version).outputs[
                SIGNATURE.output_name]

        for seed in seeds:
            if family == "a":
                r = evaluate_phantom(seed, predict)
                truth, ours = r.truth, r.ours
            else:
                cine = make_cine_b(seed)
                truth = cine.truth()
                ours = cardiac_function(masks_from_labels(segment_cine(cine.images, predict)), cine.geometry,
                                        cine.heart_rate_bpm, cine.bsa_m2)
            rows.append((truth.lv.edv_ml, ours.lv.edv_ml, truth.lv.esv_ml, ours.lv.esv_ml, truth.lv.ef_pct,
                         ours.lv.ef_pct))
    a = np.array(rows)
    ef, edv, esv = np.abs(a[:, 5] - a[:, 4]), np.abs(a[:, 1] / a[:, 0] - 1) * 100, np.abs(a[:, 3] / a[:, 2] - 1) * 100
    measured = {"ef_within_3_points": float(np.mean(ef <= 3.0)), "ef_max_abs_error_points": float(ef.max()),
                "edv_max_abs_error_pct": float(edv.max()), "esv_max_abs_error_pct": float(esv.max()),
                "ef_mean_abs_error_points": float(ef.mean()),
                "edv_esv_within_10pct": float(np.mean((edv <= 10) & (esv <= 10)))}
    return {"version": version, "measured": measured,
            "cases": [dict(zip(("edv_truth", "edv", "esv_truth", "esv", "ef_truth", "ef"),
                               (round(float(v), 1) for v in row), strict=True)) for row in rows]}


# --- coronary calcium ---------------------------------------------------------------------------------------

def _coronary(repo: Path, version: int | None, family: str, seeds: Sequence[int]) -> dict[str, Any]:
    """The labeller through ONNX Runtime on phantoms of *family* (:mod:`training.coronary_ct.evaluate`'s figures)."""
    from models.runtime import RuntimeSettings, make_runtime
    from training.coronary_ct.evaluate import evaluate_prepared, prepare
    from training.coronary_ct.export import SIGNATURE

    with make_runtime(RuntimeSettings(model_repository=repo, device="cpu")) as runtime:
        version = version or runtime.resolve_version(SIGNATURE.model)

        def predict(x: np.ndarray) -> np.ndarray:
            return runtime.infer(SIGNATURE.model, {SIGNATURE.input_name: x}, version=version).outputs[
                SIGNATURE.output_name]

        metrics = evaluate_prepared([prepare(seed, family.upper()) for seed in seeds], predict)
    cross = metrics.cross_family()
    recall: Any = cross["lesion_recall_per_vessel"]
    within: Any = cross["vessel_agatston_within_10pct"]
    cac: Any = cross["cac_drs_agreement"]
    conf: Any = cross["confounder_counted_phantoms"]
    measured = {"vessel_agatston_within_10pct": within["fraction"],
                **{f"{v.lower()}_lesion_recall": recall[v]["fraction"] for v in ("LM", "LAD", "LCx", "RCA")},
                "cac_drs_agreement": cac["fraction"],
                "confounder_counted_phantoms": conf["fraction"],
                "lowest_vessel_recall": min(float(recall[v]["fraction"]) for v in ("LM", "LAD", "LCx", "RCA")),
                "no_confounder_counted": 1.0 - float(conf["fraction"]),  # the shipping rule's (SHIP_MEASURES)
                "vessel_cases": within["vessel_cases"], "total_agatston_within_bar": metrics.agatston_within_bar_fraction}
    return {"version": version, "measured": measured}


RUNNERS: dict[str, Callable[[Path, int | None, str, Sequence[int]], dict[str, Any]]] = {
    "lung_nodules": _lung, "mammography": _mammo, "cardiac_mri": _cardiac, "coronary_ct": _coronary}


def trained_families(repo: Path, model: str, version: int) -> str:
    """The phantom families a version was trained on, from its model card (``trained_on.families`` or
    ``trained_on.phantom_families``; ``a`` when the card names none, as the versions trained on family A alone do),
    e.g. ``a+b``."""
    card = repo / model / str(version) / "model_card.json"
    trained = json.loads(card.read_text(encoding="utf-8")).get("trained_on", {}) if card.is_file() else {}
    listed = (trained.get("families") or list(trained.get("phantom_families") or [])) if isinstance(trained, dict) \
        else None  # cardiac cards list them, mammography cards keep one entry per family
    if isinstance(listed, str):
        return listed.lower()
    return "+".join(str(f).lower() for f in listed) if listed else "a"


def evaluate_families(task: str, repo: Path, version: int | None, choice: str, count: int,
                      seed_start: int | None = None, train_family: str | None = None) -> list[dict[str, Any]]:
    """One row per evaluation family: ``{task, train_family, family, version, seeds, measured, bars, seconds}``;
    *seed_start* None: each family's own unseen seeds (:func:`eval_seed_start`); *train_family* None: the families
    the version's model card names (:func:`trained_families`).

    Raises:
        FamilyError: a task without two phantom families, or an unknown family.
    """
    if task not in RUNNERS:
        raise FamilyError(f"{task}: no phantom families (tasks with families: {', '.join(TASKS)})")
    rows = []
    for family in families(choice):
        start = eval_seed_start(task, family) if seed_start is None else seed_start
        seeds = list(range(start, start + count))
        t0 = time.perf_counter()
        result = RUNNERS[task](repo, version, family, seeds)
        trained = train_family or trained_families(repo, MODELS[task], int(result["version"]))
        row = {"task": task, "train_family": trained, "family": family, "seeds": seeds, **result,
               "bars": bars(task, result["measured"]), "seconds": round(time.perf_counter() - t0, 1)}
        LOGGER.info("%s family %s: %s", task, family, row["measured"])
        rows.append(row)
    return rows


def table_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A plain table: one line per (train family -> evaluation family) with each bar's value and MET/FAIL."""
    lines = []
    for row in rows:
        lines.append(f"{row['task']} v{row['version']}: train family {row['train_family']} -> evaluation family "
                     f"{row['family']} ({len(row['seeds'])} phantoms, seeds {row['seeds'][0]}..{row['seeds'][-1]}, "
                     f"{row['seconds']} s)")
        for name, b in row["bars"].items():
            rule = "< " if BARS.get(row["task"], {}).get(name, (0.0, ""))[1] == "below" else ""
            lines.append(f"  {'MET ' if b['met'] else 'FAIL'} {name}: {b['value']} (bar {rule}{b['bar']})")
        extra = {k: v for k, v in row["measured"].items() if k not in row["bars"]}
        if extra:
            lines.append("  also: " + ", ".join(f"{k} {round(v, 3) if isinstance(v, float) else v}"
                                                for k, v in extra.items()))
        if row.get("missed_kinds"):
            lines.append(f"  missed nodules by kind: {', '.join(row['missed_kinds'])}")
    return lines


def card_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as the model card keeps them (``card['cross_family']``)."""
    return [{"train_family": r["train_family"], "evaluation_family": r["family"], "phantoms": len(r["seeds"]),
             "bars": r["bars"]} for r in rows]


# --- shipping a candidate over the shipped version -------------------------------------------------------------

@dataclass(frozen=True)
class Measure:
    """One figure the shipping rule compares (:func:`ship_verdict`): which way is better and how large a change is
    noise. *one_case*: the noise is at least one evaluation case's worth (1 / cases of that family), for rates over
    the cases (EF within 3 points, density agreement)."""

    name: str
    higher_is_better: bool = True
    noise: float = 0.0
    one_case: bool = False


@dataclass(frozen=True)
class Verdict:
    """:func:`ship_verdict`'s answer: *better* and *worse* list, per family, the measures that moved beyond noise
    (``"name 0.42 -> 0.81"``); *missing* the families the candidate was not evaluated on beside the baseline."""

    ship: bool
    better: dict[str, list[str]]
    worse: dict[str, list[str]]
    missing: list[str]

    def reasons(self) -> list[str]:
        """One line per family that moved (and per family not evaluated), as the evaluators print them."""
        lines = [f"family {f}: not evaluated beside the baseline" for f in self.missing]
        for family in sorted(set(self.better) | set(self.worse)):
            parts = [f"better: {'; '.join(self.better[family])}" if self.better.get(family) else "",
                     f"worse beyond noise: {'; '.join(self.worse[family])}" if self.worse.get(family) else ""]
            lines.append(f"family {family}: " + (", ".join(p for p in parts if p) or "no change beyond noise"))
        return lines


def ship_verdict(baseline: Mapping[str, Mapping[str, Any]], candidate: Mapping[str, Mapping[str, Any]],
                 measures: Sequence[Measure], cases: Mapping[str, int],
                 better_on: Sequence[str] | None = None) -> Verdict:
    """The one shipping rule of every retrained task (issue 28), for a candidate that does not meet every bar:
    ship when it is better than the shipped version beyond noise on some family (of *better_on*: every family when
    None) and worse beyond noise on none. *baseline* and *candidate* map family -> measure -> value; NaN or None
    is "no change" (a family without a lesion has no sensitivity), an absent measure a ValueError. A family of the
    baseline the candidate was not evaluated on refuses it.

    Why not "more bars met": a bar is a threshold, and a candidate can cross one by a single case while it loses
    more elsewhere; and why noise: on 8 to 50 phantoms one case moves a rate by 2 to 12 points either way."""
    for family, values in (*baseline.items(), *candidate.items()):
        absent = [m.name for m in measures if m.name not in values]
        if absent:  # None or NaN is "no change"; a measure the evaluation does not report is a programming error
            raise ValueError(f"family {family}: no {', '.join(absent)} among the measured values")
    better: dict[str, list[str]] = {}
    worse: dict[str, list[str]] = {}
    missing = sorted(f for f in baseline if f not in candidate)
    for family in sorted(f for f in candidate if f in baseline):
        for m in measures:
            old, new = _number(baseline[family].get(m.name)), _number(candidate[family].get(m.name))
            if not (np.isfinite(old) and np.isfinite(new)):
                continue
            noise = max(m.noise, 1.0 / max(1, cases.get(family, 1)) if m.one_case else 0.0) + 1e-9
            gain = (new - old) if m.higher_is_better else (old - new)
            text = f"{m.name} {old:.4g} -> {new:.4g}"
            if gain > noise:
                better.setdefault(family, []).append(text)
            elif gain < -noise:
                worse.setdefault(family, []).append(text)
    eligible = [f for f in better if better_on is None or f in better_on]
    return Verdict(bool(eligible) and not worse and not missing, better, worse, missing)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


#: What each task's shipping rule compares (:func:`ship_verdict`): the issue's bars and the figures beside them.
SHIP_MEASURES: dict[str, tuple[Measure, ...]] = {
    # sensitivity at the version's own operating point as well as at 1 FP/scan: what a radiologist is shown
    "lung_nodules": (Measure("sensitivity_5mm_at_1fp", noise=0.05), Measure("sensitivity_5mm", noise=0.05),
                     Measure("fp_per_scan", False, 0.25),
                     Measure("lung_rads_exam_agreement", one_case=True), Measure("diameter_mae_mm", False, 0.1)),
    "mammography": (Measure("density_agreement", one_case=True), Measure("density_within_one_grade", one_case=True),
                    Measure("mass_sensitivity", one_case=True), Measure("mass_fp_per_image", False, 0.1),
                    # a count of false marks: one mark (one breast's false positive) is noise, as one case is for
                    # a rate; the bar (0) is printed beside it
                    Measure("marks_in_lesion_free_breasts", False, 1.0)),
    "cardiac_mri": (Measure("ef_mean_abs_error_points", False, 0.5), Measure("ef_within_3_points", one_case=True),
                    Measure("edv_esv_within_10pct", one_case=True)),
    "coronary_ct": tuple(Measure(name, noise=0.02) for name in (
        "vessel_agatston_within_10pct", "lowest_vessel_recall", "cac_drs_agreement", "no_confounder_counted")),
}


def row_values(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Rows of :func:`evaluate_families` (``family``, ``measured``, ``seeds``) as :func:`ship_verdict`'s values
    and case counts."""
    return ({str(r["family"]): dict(r["measured"]) for r in rows},
            {str(r["family"]): len(r["seeds"]) for r in rows})


# --- a run's candidate beside a published version ---------------------------------------------------------------

def compare_run(task: str, run_dir: Path, repo: Path, baseline: int, count: int,
                seed_start: int | None = None) -> tuple[list[dict[str, Any]], Verdict]:
    """The run's candidate (``RUN/export``) and published version *baseline* of *repo* on the same unseen phantoms
    of both families: rows (``role`` baseline or candidate, family a then b) and the shipping verdict
    (:func:`ship_verdict` with the task's :data:`SHIP_MEASURES`)."""
    rows = []
    for role, where, version in (("baseline", repo, baseline), ("candidate", run_dir / "export", None)):
        for row in evaluate_families(task, where, version, "both", count, seed_start):
            rows.append({**row, "role": role})
    base, _ = row_values([r for r in rows if r["role"] == "baseline"])
    cand, cases = row_values([r for r in rows if r["role"] == "candidate"])
    return rows, ship_verdict(base, cand, SHIP_MEASURES[task], cases)


def comparison_card_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`compare_run`'s rows as the model card keeps them: the baseline's rows name their version
    (``a (version 6)``), the candidate's its train families."""
    out = card_rows(rows)
    for card_row, row in zip(out, rows, strict=True):
        if row.get("role") == "baseline":
            card_row["train_family"] = f"{row['train_family']} (version {row['version']})"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.families RUN --task lung_nodules --baseline-version 6 [--phantoms 8] [--require-better]``:
    :func:`compare_run`; prints both tables and the verdict, writes ``RUN/cross_family.json`` (the card's rows, both
    versions; ``aiws export RUN`` puts them in the card) and ``RUN/comparison.json``. Exits 0 when the candidate
    meets every bar on both families or may replace the baseline; with ``--require-better`` 3 otherwise."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m training.families")
    parser.add_argument("run", type=Path)
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--baseline-version", type=int, required=True)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1] / "triton_repo")
    parser.add_argument("--phantoms", type=int, default=8, help="phantoms per family")
    parser.add_argument("--seed-start", type=int, default=None,
                        help="first evaluation seed of both families (default: each family's own unseen seeds)")
    parser.add_argument("--require-better", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rows, verdict = compare_run(args.task, args.run, args.repo, args.baseline_version, args.phantoms, args.seed_start)
    for role in ("baseline", "candidate"):
        sys.stdout.write(f"--- {role}\n" + "\n".join(table_lines([r for r in rows if r["role"] == role])) + "\n")
    meets = all(b["met"] for r in rows if r["role"] == "candidate" for b in r["bars"].values())
    (args.run / "comparison.json").write_text(json.dumps({"rows": rows, "meets_every_bar": meets,
                                                           "verdict": {"ship": verdict.ship,
                                                                       "reasons": verdict.reasons()}},
                                                          indent=2, default=str), encoding="utf-8")
    (args.run / "cross_family.json").write_text(json.dumps(comparison_card_rows(rows), indent=2), encoding="utf-8")
    ok = meets or verdict.ship
    sys.stdout.write("\n".join(["verdict: " + ("ship the candidate" if ok else "keep the baseline"),
                                *verdict.reasons()]) + "\n")
    return 0 if ok or not args.require_better else 3


if __name__ == "__main__":
    raise SystemExit(main())
