"""Evaluation of the calcium pipeline's measures against phantom truth, on seeds never used in training.

Quality bars (issue 5): total Agatston within 5 % of the truth (within 3 points when the
truth is below 60) on every phantom; vessel assignment accuracy >= 90 % over truly coronary
lesions; no bone lesion counted.

Cross-family bars (issue 28), on a phantom family (:data:`FAMILIES`) the version was not trained on:
per-vessel Agatston within 10 % (or 2 points) in >= 90 % of vessel cases; recall of calcified
coronary lesions (labelled with their own vessel) >= 95 % per vessel; CAC-DRS agreement >= 90 %;
valve, annulus, aortic wall, cartilage or bone calcium counted in a coronary score in < 2 % of phantoms.
Proportions carry Wilson 95 % intervals.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.coronary_ct.calcium import CORONARIES, VESSEL_ORDER, Lesion, ScanGeometry, Vessel, score
from models.coronary_ct.labelling import Predict, label_lesions, skeletal_structures, vote_by_plaque
from models.coronary_ct.patches import lesion_patches
from training.coronary_ct.dataset import family_phantom, phantom_lesions
from training.coronary_ct.phantom import CalciumPhantom, Truth
from training.coronary_ct.phantom_b import coronary_anatomy_b
from training.families import SHIP_MEASURES, ship_verdict

LOGGER = logging.getLogger(__name__)

#: Seeds 0-4999 train, 5000-9999 validate during training, >= 10000 are the unseen evaluation seeds.
EVAL_SEED_START = 10_000


def agatston_within_bar(predicted: float, truth: float) -> bool:
    """|predicted - truth| <= 3 points when truth < 60, else <= 5 % of truth."""
    tolerance = 3.0 if truth < 60 else 0.05 * truth
    return abs(predicted - truth) <= tolerance + 1e-9


@dataclass(frozen=True)
class PhantomResult:
    seed: int
    truth_agatston: float
    agatston: float
    truth_cac_drs: str
    cac_drs: str
    coronary_lesions: int
    correct_vessel: int
    bone_counted: int
    extra_counted: int  # aortic/valve/mitral calcium or noise counted as coronary
    family: str = "A"
    vessel_truth: tuple[float, ...] = ()  # Agatston per vessel (LM, LAD, LCx, RCA), truth labels
    vessel_agatston: tuple[float, ...] = ()  # the same with the labeller's labels
    vessel_lesions: tuple[int, ...] = ()  # 2D lesions whose truth is the vessel
    vessel_right: tuple[int, ...] = ()  # ... labelled with that vessel
    confounders_counted: int = 0  # valve/root/annulus/aortic wall/cartilage or bone lesions counted as coronary

    @property
    def within_bar(self) -> bool:
        return agatston_within_bar(self.agatston, self.truth_agatston)


def vessel_agatston_within_bar(predicted: float, truth: float) -> bool:
    """Per-vessel bar of issue 28: within 10 % of the truth or within 2 points."""
    return abs(predicted - truth) <= max(2.0, 0.1 * truth) + 1e-9


def wilson(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion (0, 1 when *total* is 0)."""
    if total == 0:
        return 0.0, 1.0
    p = hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return round(max(float(centre - half), 0.0), 4), round(min(float(centre + half), 1.0), 4)


@dataclass(frozen=True)
class CoronaryMetrics:
    results: tuple[PhantomResult, ...]

    @property
    def agatston_within_bar_fraction(self) -> float:
        return float(np.mean([r.within_bar for r in self.results])) if self.results else 0.0

    @property
    def vessel_accuracy(self) -> float:
        total = sum(r.coronary_lesions for r in self.results)
        return sum(r.correct_vessel for r in self.results) / total if total else 1.0

    @property
    def bone_counted(self) -> int:
        return sum(r.bone_counted for r in self.results)

    @property
    def cac_drs_agreement(self) -> float:
        return float(np.mean([r.cac_drs == r.truth_cac_drs for r in self.results])) if self.results else 0.0

    @property
    def passes(self) -> bool:
        return self.agatston_within_bar_fraction == 1.0 and self.vessel_accuracy >= 0.9 and self.bone_counted == 0

    def vessel_cases(self) -> tuple[int, int]:
        """(vessel cases within the per-vessel bar, vessel cases): a vessel case is a phantom's vessel with calcium
        in the truth or in our score."""
        pairs = [(o, t) for r in self.results for o, t in zip(r.vessel_agatston, r.vessel_truth) if o > 0 or t > 0]
        return sum(vessel_agatston_within_bar(o, t) for o, t in pairs), len(pairs)

    def recall(self) -> dict[str, tuple[int, int]]:
        """Per vessel: (lesions labelled with their own vessel, lesions)."""
        return {v.value: (sum(r.vessel_right[i] for r in self.results if r.vessel_right),
                          sum(r.vessel_lesions[i] for r in self.results if r.vessel_lesions))
                for i, v in enumerate(CORONARIES)}

    def cross_family(self) -> dict[str, object]:
        """The bars of issue 28 with Wilson 95 % intervals, and whether each is met."""
        hit, n = self.vessel_cases()
        cac = sum(r.cac_drs == r.truth_cac_drs for r in self.results)
        conf = sum(r.confounders_counted > 0 for r in self.results)
        total = len(self.results)
        recall = {v: {"fraction": round(h / t, 4) if t else 1.0, "lesions": t, "ci95": wilson(h, t),
                      "meets_95": (h / t if t else 1.0) >= 0.95} for v, (h, t) in self.recall().items()}
        out: dict[str, object] = {
            "vessel_agatston_within_10pct": {"fraction": round(hit / n, 4) if n else 1.0, "vessel_cases": n,
                                             "ci95": wilson(hit, n), "meets_90": (hit / n if n else 1.0) >= 0.9},
            "lesion_recall_per_vessel": recall,
            "cac_drs_agreement": {"fraction": round(cac / total, 4) if total else 0.0, "phantoms": total,
                                  "ci95": wilson(cac, total), "meets_90": total > 0 and cac / total >= 0.9},
            "confounder_counted_phantoms": {"fraction": round(conf / total, 4) if total else 0.0, "phantoms": total,
                                            "ci95": wilson(conf, total), "meets_below_2pct": total > 0
                                            and conf / total < 0.02},
        }
        out["passes_cross_family_bars"] = (bool(out["vessel_agatston_within_10pct"]["meets_90"])  # type: ignore[index]
                                           and all(r["meets_95"] for r in recall.values())
                                           and bool(out["cac_drs_agreement"]["meets_90"])  # type: ignore[index]
                                           and bool(out["confounder_counted_phantoms"]["meets_below_2pct"]))  # type: ignore[index]
        return out

    def as_dict(self) -> dict[str, float | int | bool]:
        errors = [abs(r.agatston - r.truth_agatston) for r in self.results]
        return {
            "phantoms": len(self.results),
            "agatston_within_bar_fraction": round(self.agatston_within_bar_fraction, 4),
            "agatston_mean_abs_error": round(float(np.mean(errors)), 3) if errors else 0.0,
            "vessel_accuracy": round(self.vessel_accuracy, 4),
            "coronary_lesions": sum(r.coronary_lesions for r in self.results),
            "bone_lesions_counted": self.bone_counted,
            "extra_coronary_lesions_counted": sum(r.extra_counted for r in self.results),
            "cac_drs_agreement": round(self.cac_drs_agreement, 4),
            "passes_bars": self.passes,
        }

    def table(self) -> str:
        lines = ["seed   truth  score  bar  CAC-DRS(truth/ours)  vessel-ok  bone  extra"]
        for r in self.results:
            lines.append(f"{r.seed:<6} {r.truth_agatston:6.1f} {r.agatston:6.1f}  {'ok ' if r.within_bar else 'NO '}"
                         f"  {r.truth_cac_drs:>7}/{r.cac_drs:<7}       {r.correct_vessel:>3}/{r.coronary_lesions:<3}"
                         f"   {r.bone_counted:>3}  {r.extra_counted:>3}")
        return "\n".join(lines)


@dataclass(frozen=True)
class PreparedPhantom:
    """A phantom's lesions, truth and network input, computed once (validation reuses it every epoch)."""

    seed: int
    geometry: ScanGeometry
    shape: tuple[int, int, int]
    lesions: list[Lesion]
    truth: list[Truth]
    patches: np.ndarray  # float16
    family: str = "A"


def prepare(seed: int, family: str = "A") -> PreparedPhantom:
    phantom = family_phantom(family, seed)
    lesions, truth = phantom_lesions(phantom)
    patches = lesion_patches(phantom.hu, phantom.geometry, lesions).astype(np.float16)
    return PreparedPhantom(seed, phantom.geometry, phantom.hu.shape, lesions, truth, patches, family)


def compare(prepared: PreparedPhantom, labels: list[Vessel]) -> PhantomResult:
    """Score with the given labels and with the truth labels, and count the labelling errors."""
    lesions, truth = prepared.lesions, prepared.truth
    ours = score(lesions, labels, prepared.geometry)
    ref = score(lesions, [t.vessel for t in truth], prepared.geometry)
    coronary = [(t, lab) for t, lab in zip(truth, labels) if t.vessel is not Vessel.NONE]
    counted = [t for t, lab in zip(truth, labels) if lab is not Vessel.NONE]
    return PhantomResult(
        seed=prepared.seed,
        truth_agatston=ref.total.agatston,
        agatston=ours.total.agatston,
        truth_cac_drs=ref.cac_drs,
        cac_drs=ours.cac_drs,
        coronary_lesions=len(coronary),
        correct_vessel=sum(1 for t, lab in coronary if t.vessel is lab),
        bone_counted=sum(1 for t in counted if t is Truth.BONE),
        extra_counted=sum(1 for t in counted if t in (Truth.EXTRA_CORONARY, Truth.NONE)),
        family=prepared.family,
        vessel_truth=tuple(ref.vessels[v].agatston for v in CORONARIES),
        vessel_agatston=tuple(ours.vessels[v].agatston for v in CORONARIES),
        vessel_lesions=tuple(sum(t.vessel is v for t in truth) for v in CORONARIES),
        vessel_right=tuple(sum(t.vessel is v and lab is v for t, lab in zip(truth, labels)) for v in CORONARIES),
        confounders_counted=sum(1 for t in counted if t in (Truth.EXTRA_CORONARY, Truth.BONE)),
    )


def evaluate_prepared(prepared: Iterable[PreparedPhantom], predict: Predict, batch_size: int = 512) -> CoronaryMetrics:
    """Metrics of a labeller over prepared phantoms."""
    results = []
    for p in prepared:
        logits = [predict(p.patches[i:i + batch_size].astype(np.float32)) for i in range(0, len(p.lesions), batch_size)]
        stacked = np.concatenate(logits).astype(np.float64) if logits else np.zeros((0, len(VESSEL_ORDER)))
        voted = vote_by_plaque(p.lesions, stacked, p.shape)
        skeletal = skeletal_structures(p.lesions, p.geometry, p.shape)  # as label_lesions: the pipeline's labels
        results.append(compare(p, [Vessel.NONE if bone else lab for lab, bone in zip(voted, skeletal)]))
    return CoronaryMetrics(tuple(results))


def evaluate_phantom(seed: int, predict: Predict, family: str = "A") -> PhantomResult:
    """Generate, label through :func:`label_lesions` (the pipeline's code path) and compare."""
    phantom = family_phantom(family, seed)
    lesions, truth = phantom_lesions(phantom)
    labels = label_lesions(phantom.hu, phantom.geometry, lesions, predict)
    prepared = PreparedPhantom(seed, phantom.geometry, phantom.hu.shape, lesions, truth, np.zeros((0,), np.float16),
                               family)
    return compare(prepared, labels)


def evaluate(seeds: Iterable[int], predict: Predict, family: str = "A") -> CoronaryMetrics:
    """Run the labeller on each phantom of *family* and compare scores and labels with the truth."""
    results = tuple(evaluate_phantom(s, predict, family) for s in seeds)
    metrics = CoronaryMetrics(results)
    LOGGER.info("coronary evaluation (family %s): %s", family, metrics.as_dict())
    return metrics


#: The phantom families: A (:mod:`training.coronary_ct.phantom`), B (:mod:`training.coronary_ct.phantom_b`).
FAMILIES = ("A", "B")


@dataclass(frozen=True)
class StageRow:
    """Where one vessel's calcified lesions of one phantom go: truth blobs, candidates (2D lesions whose
    majority truth is the vessel), labelled right / not coronary / another vessel."""

    vessel: str
    calcifications: int
    calcifications_found: int
    candidates: int
    right: int
    not_coronary: int
    other_vessel: int


def centres_mm(phantom: CalciumPhantom, lesions: Sequence[Lesion]) -> np.ndarray:
    """(n, 3) patient coordinates (x, y, z mm) of the lesions' centroids."""
    ps, inc, o = phantom.pixel_spacing_mm, phantom.increment_mm, phantom.origin_mm
    return np.array([(o[0] + les.centroid_rc[1] * ps, o[1] + les.centroid_rc[0] * ps, o[2] + les.slice_index * inc)
                     for les in lesions]).reshape(-1, 3)


def stage_rows(phantom: CalciumPhantom, predict: Predict) -> tuple[list[StageRow], int, int]:
    """Per-stage accounting of one phantom through the pipeline's code path (:func:`label_lesions`): per vessel
    a :class:`StageRow`; and the confounder (valve, annulus, aortic wall, cartilage) and bone 2D lesions
    labelled coronary."""
    lesions, truth = phantom_lesions(phantom)
    labels = label_lesions(phantom.hu, phantom.geometry, lesions, predict)
    centres = centres_mm(phantom, lesions)
    rows = []
    for vessel in VESSEL_ORDER[1:]:
        calcs = [c for c in phantom.calcifications if c.kind == vessel.value]
        own = np.array([t.vessel is vessel for t in truth], dtype=bool)
        found = sum(1 for c in calcs if own.any() and
                    float(np.linalg.norm(centres[own] - np.asarray(c.centre_mm), axis=1).min()) <= max(c.radii_mm) + 3)
        pairs = [lab for t, lab in zip(truth, labels) if t.vessel is vessel]
        rows.append(StageRow(vessel.value, len(calcs), found, len(pairs), sum(lab is vessel for lab in pairs),
                             sum(lab is Vessel.NONE for lab in pairs),
                             sum(lab not in (vessel, Vessel.NONE) for lab in pairs)))
    extra = sum(1 for t, lab in zip(truth, labels) if t is Truth.EXTRA_CORONARY and lab is not Vessel.NONE)
    bone = sum(1 for t, lab in zip(truth, labels) if t is Truth.BONE and lab is not Vessel.NONE)
    return rows, extra, bone


def stage_table(family: str, seeds: Iterable[int], predict: Predict) -> str:
    """The per-stage table over *seeds* of *family*, summed per vessel (text, for the analysis of issue 28)."""
    totals: dict[str, np.ndarray] = {}
    extra = bone = 0
    for s in seeds:
        rows, e, b = stage_rows(family_phantom(family, s), predict)
        extra, bone = extra + e, bone + b
        for r in rows:
            values = np.array([r.calcifications, r.calcifications_found, r.candidates, r.right, r.not_coronary,
                               r.other_vessel])
            totals[r.vessel] = totals.get(r.vessel, 0) + values
    lines = [f"family {family}: vessel  blobs  blobs-found  candidates  right  not-coronary  other-vessel"]
    lines += [f"          {v:<6} {t[0]:>6} {t[1]:>12} {t[2]:>11} {t[3]:>6} {t[4]:>13} {t[5]:>13}" for v, t in totals.items()]
    lines.append(f"          confounder (valve/root/annulus/aortic/cartilage) lesions counted as coronary: {extra}; "
                 f"bone: {bone}")
    return "\n".join(lines)


def branch_counts(seeds: Iterable[int], predict: Predict) -> dict[tuple[str, str], dict[str, int]]:
    """Where family B's coronary 2D lesions go, per branch of the tree (:func:`coronary_anatomy_b`: LM, LAD, ramus,
    LCx, RCA, PDA) and dominance: ``{(branch, "left" | "right"): {label: count}}``, the label the pipeline's code
    path (:func:`label_lesions`) gives, ``right`` when it is the truth's vessel."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for seed in seeds:
        phantom, anatomy = family_phantom("B", seed), coronary_anatomy_b(seed)
        lesions, truth = phantom_lesions(phantom)
        labels = label_lesions(phantom.hu, phantom.geometry, lesions, predict)
        for centre, t, label in zip(centres_mm(phantom, lesions), truth, labels):
            if t.vessel not in CORONARIES:
                continue
            row = counts.setdefault((anatomy.branch_of(centre)[0], anatomy.variant.dominance), {})
            key = "right" if label is t.vessel else label.value
            row[key] = row.get(key, 0) + 1
    return counts


def branch_table(seeds: Iterable[int], predict: Predict) -> str:
    """:func:`branch_counts` as text, one line per branch and dominance (for the analysis of issue 28)."""
    counts = branch_counts(seeds, predict)
    order = ("LM", "LAD", "ramus", "LCx", "RCA", "PDA")
    lines = ["family B: branch  dominance  lesions  right  labelled otherwise"]
    for (branch, dominance), row in sorted(counts.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
        other = ", ".join(f"{k} {v}" for k, v in sorted(row.items()) if k != "right") or "-"
        lines.append(f"          {branch:<6} {dominance:<9} {sum(row.values()):>8} {row.get('right', 0):>6}  {other}")
    return "\n".join(lines)


def onnx_predict(model_repository: Path, version: int | None = None) -> tuple[Predict, Callable[[], None]]:
    """The labeller of *model_repository* (a ``triton_repo`` or a run's ``export/``) through ONNX Runtime, as the
    service runs it; and the function that closes the runtime."""
    from models.coronary_ct.network import INPUT_NAME, MODEL_NAME, OUTPUT_NAME
    from models.runtime import RuntimeSettings, make_runtime

    runtime = make_runtime(RuntimeSettings(model_repository=model_repository, device="cpu"))
    resolved = runtime.resolve_version(MODEL_NAME, version)

    def predict(x: np.ndarray) -> np.ndarray:
        return runtime.infer(MODEL_NAME, {INPUT_NAME: x}, version=resolved).outputs[OUTPUT_NAME]

    return predict, runtime.close


def _prepare_job(job: tuple[str, int]) -> PreparedPhantom:
    return prepare(job[1], job[0])


def prepare_families(seeds: Sequence[int], families: Sequence[str] = FAMILIES, workers: int = 2,
                     cache: Path | None = None) -> dict[str, list[PreparedPhantom]]:
    """The prepared phantoms (lesions, truth, network input) of each family, built in *workers* processes; kept in
    (and read back from) the pickle *cache* when given, so that several labellers are compared on the same input."""
    import pickle

    if cache is not None and cache.is_file():
        cached: dict[str, list[PreparedPhantom]] = pickle.loads(cache.read_bytes())
        if all([p.seed for p in cached.get(f, [])] == list(seeds) for f in families):
            return cached
    jobs = [(f, s) for f in families for s in seeds]
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            done = pool.map(_prepare_job, jobs, chunksize=2)
    else:
        done = [_prepare_job(j) for j in jobs]
    out = {f: [p for p, (fam, _) in zip(done, jobs) if fam == f] for f in families}
    if cache is not None:
        cache.write_bytes(pickle.dumps(out))
    return out


def family_report(predict: Predict, prepared: Mapping[str, Sequence[PreparedPhantom]],
                  trained_on: str = "") -> dict[str, Any]:
    """Per evaluation family: the issue-5 figures (:meth:`CoronaryMetrics.as_dict`) and the cross-family bars
    (:meth:`CoronaryMetrics.cross_family`); *trained_on* names the training families (the table's first column)."""
    out: dict[str, Any] = {}
    for family, phantoms in prepared.items():
        metrics = evaluate_prepared(phantoms, predict)
        LOGGER.info("coronary evaluation (family %s): %s", family, metrics.as_dict())
        out[family] = {"trained_on": trained_on, "seeds": [phantoms[0].seed, phantoms[-1].seed + 1],
                       **metrics.as_dict(), "cross_family_bars": metrics.cross_family()}
    return out


def table_lines(rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """'train -> evaluation family' lines of the cross-family bars (one per evaluated pair)."""
    lines = ["train -> eval  vessel Agatston <=10 %   recall LM / LAD / LCx / RCA        CAC-DRS   confounder "
             "phantoms  bars"]
    for label, r in rows.items():
        bars = r["cross_family_bars"]
        rec = bars["lesion_recall_per_vessel"]
        lines.append(f"{label:<14} {100 * bars['vessel_agatston_within_10pct']['fraction']:5.1f} % "
                     f"({bars['vessel_agatston_within_10pct']['vessel_cases']:>3})      "
                     + " / ".join(f"{100 * rec[v]['fraction']:5.1f}" for v in ("LM", "LAD", "LCx", "RCA"))
                     + f"   {100 * bars['cac_drs_agreement']['fraction']:5.1f} %   "
                     f"{100 * bars['confounder_counted_phantoms']['fraction']:5.1f} %        "
                     f"{'MET' if bars['passes_cross_family_bars'] else 'FAIL'}")
    return lines


#: How much worse than the baseline a headline fraction may be on a family (one case in 50) and still count as held:
#: the noise of the shared shipping rule's coronary measures (:data:`training.families.SHIP_MEASURES`).
IMPROVEMENT_TOLERANCE = SHIP_MEASURES["coronary_ct"][0].noise


def headline(report: Mapping[str, Any]) -> dict[str, float]:
    """The four headline fractions of one family's report (higher is better for each)."""
    bars = report["cross_family_bars"]
    return {"vessel_agatston_within_10pct": float(bars["vessel_agatston_within_10pct"]["fraction"]),
            "lowest_vessel_recall": min(float(r["fraction"]) for r in bars["lesion_recall_per_vessel"].values()),
            "cac_drs_agreement": float(bars["cac_drs_agreement"]["fraction"]),
            "no_confounder_counted": 1.0 - float(bars["confounder_counted_phantoms"]["fraction"])}


def improves_on(ours: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether a candidate is worth shipping over the baseline when the cross-family bars are not all met: the shared
    rule (:func:`training.families.ship_verdict`) on the headline fractions (:func:`headline`): on every family none
    is more than :data:`IMPROVEMENT_TOLERANCE` below the baseline's, and on at least one family one of them is
    better by more than that."""
    return ship_verdict({f: headline(r) for f, r in baseline.items()}, {f: headline(r) for f, r in ours.items()},
                        SHIP_MEASURES["coronary_ct"], {}).ship


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.coronary_ct.evaluate RUN [--seeds 10000:10050] [--baseline REPO:VERSION]``: the run's
    candidate on unseen seeds of each family (ONNX Runtime), and optionally a shipped version for comparison;
    writes ``RUN/evaluation.json`` (``aiws export RUN`` puts it in the card) and prints the cross-family table.
    Exits 0 when the run meets every cross-family bar or improves on the baseline (:func:`improves_on`), else 1."""
    import argparse
    import json
    import sys

    from training.candidate import CANDIDATE_DIR, EVALUATION_JSON

    parser = argparse.ArgumentParser(prog="python -m training.coronary_ct.evaluate")
    parser.add_argument("run", type=Path)
    parser.add_argument("--seeds", default=f"{EVAL_SEED_START}:{EVAL_SEED_START + 50}")
    parser.add_argument("--baseline", help="REPO:VERSION of a published labeller to evaluate beside the run")
    parser.add_argument("--baseline-trained-on", default="A")
    parser.add_argument("--cache", type=Path, help="pickle of the prepared evaluation phantoms (made if missing)")
    parser.add_argument("--workers", type=int, default=2, help="processes preparing the phantoms")
    args = parser.parse_args(argv)
    lo, hi = (int(v) for v in args.seeds.split(":"))
    seeds = list(range(lo, hi))
    run_cfg = json.loads((args.run / "config.json").read_text(encoding="utf-8"))
    trained_on = "+".join(run_cfg.get("families", ["A"]))
    prepared = prepare_families(seeds, FAMILIES, args.workers, args.cache)
    predict, close = onnx_predict(args.run / CANDIDATE_DIR)
    try:
        ours = family_report(predict, prepared, trained_on)
    finally:
        close()
    rows = {f"{trained_on} -> {f}": r for f, r in ours.items()}
    baseline: dict[str, Any] = {}
    if args.baseline:
        repo, version = args.baseline.rsplit(":", 1)
        predict, close = onnx_predict(Path(repo), int(version))
        try:
            baseline = family_report(predict, prepared, args.baseline_trained_on)
        finally:
            close()
        rows = {**{f"v{version} {args.baseline_trained_on} -> {f}": r for f, r in baseline.items()}, **rows}
    report = {"task": "coronary_ct", "runtime": "onnxruntime", "seeds": [lo, hi], "families": ours,
              "cross_family_table": table_lines(rows),
              **({"baseline": {"version": args.baseline.rsplit(":", 1)[1], "families": baseline}} if baseline else {}),
              "passes_bars": all(r["cross_family_bars"]["passes_cross_family_bars"] for r in ours.values())}
    report["improves_on_baseline"] = bool(baseline) and improves_on(ours, baseline)
    (args.run / EVALUATION_JSON).write_text(json.dumps(report, indent=2), encoding="utf-8")
    for line in table_lines(rows):
        sys.stdout.write(line + "\n")
    if report["passes_bars"]:
        verdict = "every cross-family bar met: ship it"
    elif report["improves_on_baseline"]:
        verdict = (f"bars not all met, but better than version {args.baseline.rsplit(':', 1)[1]} on a family and "
                   "no worse on any: ship it, with the bars it misses in its card")
    else:
        verdict = "bars not met and not better than the baseline: do not ship"
    sys.stdout.write(f"{verdict}\nwritten {args.run / EVALUATION_JSON}\n")
    return 0 if report["passes_bars"] or report["improves_on_baseline"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
