"""The model card of the sepsis risk model, written from the model document (so its figures are
exactly those measured when the JSON was trained)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from training.sepsis import cohort as cohort_module


def _calibration_table(cal: dict[str, Any]) -> list[str]:
    lines = ["| bin | n | mean predicted | observed |", "| --- | --- | --- | --- |"]
    lines += [f"| {b['bin']} | {b['n']} | {b['mean_predicted']:.4f} | {b['observed']:.4f} |" for b in cal["bins"]]
    return lines


def _description(model: dict[str, Any]) -> list[str]:
    return [
        f"# Model card: {model['name']} {model['version']}",
        "",
        "**Not for clinical use.** Trained and evaluated on SYNTHETIC data only; the figures below say how",
        "well the model recovers the simulated physiology, not how it performs on real patients. A local",
        "validation on real, retrospective data is required before any use.",
        "",
        "## What it predicts",
        f"Probability that sepsis onset occurs within the next {model['horizon_hours']} h, from one set of",
        f"observations. Standardised logistic regression (`{model['kind']}`); contributions are",
        "coefficient × standardised feature (log-odds relative",
        "to the training cohort's mean), summed per input parameter. Two variants: `vitals_labs` (used",
        "when WBC, platelets, creatinine and bilirubin are present) and `vitals`. When a vital sign the",
        "`vitals` variant needs is missing the risk is \"not computed\": nothing is imputed.",
        "",
        "## Features",
    ]


def _training(model: dict[str, Any]) -> list[str]:
    tr = model["training"]
    spec = tr["cohort"]
    lines = []
    for v in model["variants"]:
        feats = ", ".join(f"`{f['name']}`" for f in v["features"])
        lines.append(f"- `{v['id']}`: {feats}")
    lines += [
        "",
        "`above`/`below` features are hinges max(x − t, 0) / max(t − x, 0); `altered_mentation` is",
        "GCS < 15, or ACVPU other than A when GCS is missing.",
        "",
        "## Training data: synthetic cohort (`training/sepsis/cohort.py`)",
        "```",
        *(f"{k} = {v}" for k, v in spec.items()),
        "```",
        (cohort_module.__doc__ or "").strip(),
        "",
        f"Split by patient: {1 - tr['test_fraction']:.0%} train ({tr['train_rows']} observations, positive rate "
        f"{tr['train_positive_rate']:.2%}), {tr['test_fraction']:.0%} held out ({tr['test_rows']} observations).",
        f"scikit-learn `LogisticRegression(C={tr['C']})`. Trained {model['trained']}.",
        "",
    ]
    return lines


def _evaluation(model: dict[str, Any]) -> list[str]:
    spec = model["training"]["cohort"]
    lines = ["## Held-out evaluation"]
    for vid, m in model["evaluation"].items():
        cal = m["calibration"]
        lines += [
            f"### Variant `{vid}`",
            f"- observations {m['n']}, positives {m['positives']}",
            f"- AUROC **{m['auroc']:.4f}**, AUPRC {m['auprc']:.4f}, Brier {m['brier']:.4f}",
            f"- calibration: expected calibration error {cal['ece']:.4f}, calibration intercept {cal['intercept']}, "
            f"slope {cal['slope']} (ideal 0 and 1); with a positive rate of {m['positives'] / m['n']:.1%} most",
            "  predictions are small, so read the top bins of the table as well as the ECE",
            "",
            *_calibration_table(cal),
            "",
        ]
    ref = model["reference_auroc"]
    lines += [
        "## References measured on the same held-out rows (AUROC)",
        *(f"- {k}: {v:.4f}" for k, v in ref.items()),
        "",
        "## Reproduce",
        "```",
        f"python -m training.sepsis --patients {spec['n_patients']} --seed {spec['seed']}",
        "```",
        "",
        "## Limitations",
        "- Synthetic physiology: real sepsis is heterogeneous, labels (Sepsis-3 onset) are noisy, and",
        "  measurement frequency itself carries information that this cohort does not model.",
        "- No laboratory trends, lactate, or treatment effects; labs are simulated at every observation.",
        "- The model reads one time point; the plugin's trend compares successive predictions.",
    ]
    return lines


def write_card(model: dict[str, Any], path: Path) -> None:
    """Write ``MODEL_CARD.md`` for ``model`` (the dict stored in ``sepsis_risk.json``)."""
    lines = _description(model) + _training(model) + _evaluation(model)
    path.write_text("\n".join(lines) + "\n")
