"""Where nodules are lost, per nodule kind and family: network, lung mask, candidates, second stage, operating point.

``python -m training.lung_nodules.analysis --family b --seeds 3`` runs the shipped version (ONNX Runtime, the
service's own :func:`~models.lung_nodules.inference.detect_nodules` with every candidate kept) on family A and/or
B phantoms (the ones ``aiws evaluate`` uses; family B phantoms cycle through every nodule kind so each kind is
seen) and prints, per nodule kind: how many were found at the operating point and, for each one missed, the
first stage that lost it:

- ``network``: the probability map's peak within the nodule (its truth radius, at least 3 mm) is below the
  candidate threshold (``prob_threshold``): only retraining helps;
- ``lung mask``: the lung mask (network grid) does not hold the nodule's centre (the candidate is dropped as
  outside the lungs);
- ``candidates``: the network saw it and the lung mask holds it, but no candidate (at any score) lies within
  the match distance (dropped by measurement, size or the lung test);
- ``second stage``: a candidate was there but scored below the operating ``min_score``;

then the diameter error of the found ones, their Lung-RADS category against the truth's, and the false
positives per scan at the operating point. Nothing of this is library code: it is what an engineer runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.lung_nodules.lungrads import LungRads
from training.lung_nodules.metrics import ScanResult, detection_record, match

B_KINDS = (("perifissural", "juxtapleural-round", "juxtapleural-lentiform"),
           ("perifissural", "juxtavascular", "lobulated", "spiculated"),
           ("juxtapleural-round", "perifissural", "solid", "juxtapleural-triangular"),
           ("juxtapleural-lentiform", "spiculated", "perifissural"))
STAGES = ("network", "lung mask", "candidates", "second stage")


def phantom(family: str, seed: int) -> Any:
    """The phantom ``aiws evaluate`` draws for *family* and *seed* (family B: with the kinds of
    :data:`B_KINDS`, cycling, so each pleural kind is present)."""
    if family == "a":
        from training.lung_nodules.phantom import PhantomConfig, generate_phantom
        return generate_phantom(seed, PhantomConfig(z_extent_mm=90.0, max_matrix=320, nodules=(2, 4),
                                                    diameter_mm=(5.0, 16.0), round_juxtapleural=0.3))
    from training.lung_nodules.phantom_b import PhantomConfigB, generate_phantom_b
    return generate_phantom_b(seed, PhantomConfigB(z_extent_mm=90.0, max_matrix=320, diameter_mm=(5.0, 12.0),
                                                   kinds=B_KINDS[seed % len(B_KINDS)]))


def kind_of(t: dict[str, Any]) -> str:
    """The row a truth record is counted in (family A's juxtapleural nodules split by shape)."""
    kind = str(t.get("kind", t.get("type", "?")))
    if kind == "juxtapleural":
        return f"juxtapleural-{t.get('pleural_shape', 'lentiform')}"
    return kind


def _peak_near(det: Any, t: dict[str, Any]) -> tuple[float, bool]:
    """(peak probability within the nodule, lung mask at its centre) on the network grid."""
    grid = det.net_grid
    centre = grid.to_index(np.array([t["centre_mm"]], dtype=np.float64))[0]
    radius = max(float(t["mean_diameter_mm"]) / 2.0, 3.0)
    half = np.ceil(radius / np.array(grid.spacing)).astype(int)
    c = np.rint(centre).astype(int)
    lo, hi = np.maximum(c - half, 0), np.minimum(c + half + 1, det.probability.shape)
    if np.any(hi <= lo):
        return 0.0, False
    inside = tuple(np.clip(c, 0, np.array(det.lung.shape) - 1))
    return float(det.probability[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))].max()), bool(det.lung[inside])


def analyse_scan(family: str, seed: int, runtime: Any, model: str, version: int) -> list[dict[str, Any]]:
    """One row per truth nodule (kind, stage lost or "found", diameter error, categories) plus one ``fp`` row."""
    from models.lung_nodules.inference import candidate_settings, detect_nodules

    settings = candidate_settings(runtime, model, version)
    p = phantom(family, seed)
    det = detect_nodules(runtime, p.hu, p.grid, model, version, dataclasses.replace(settings, min_score=0.0))
    records = [detection_record(n) for n in det.nodules]
    scan = ScanResult(f"{family}{seed}", list(p.nodules), records)
    hits, fps = match(scan, settings.min_score)
    any_hits, _ = match(scan, 0.0)
    rows: list[dict[str, Any]] = []
    for j, t in enumerate(scan.truth):
        peak, in_lung = _peak_near(det, t)
        row: dict[str, Any] = {"family": family, "seed": seed, "kind": kind_of(t), "mm": t["mean_diameter_mm"],
                               "peak": round(peak, 3), "truth_rads": str(t["lung_rads"])}
        if j in hits:
            f = records[hits[j]]
            row |= {"stage": "found", "error_mm": round(f["mean_diameter_mm"] - t["mean_diameter_mm"], 2),
                    "rads": f["lung_rads"], "juxta": f["juxtapleural"], "shape": f.get("pleural_shape", "")}
        elif peak < settings.prob_threshold:
            row["stage"] = "network"
        elif not in_lung:
            row["stage"] = "lung mask"
        elif j not in any_hits:
            row["stage"] = "candidates"
        else:
            row |= {"stage": "second stage", "score": records[any_hits[j]]["score"]}
        rows.append(row)
    found = [records[i] for i in range(len(records)) if records[i]["score"] >= settings.min_score]
    got = max((LungRads(f["lung_rads"]) for f in found), default=LungRads.CAT_1, key=lambda c: c.rank)
    want = max((LungRads(t["lung_rads"]) for t in scan.truth), default=LungRads.CAT_1, key=lambda c: c.rank)
    rows.append({"family": family, "seed": seed, "kind": "fp", "fp": fps, "exam_ok": got is want})
    return rows


def table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Per family and kind: nodules, found, lost per stage, diameter MAE, Lung-RADS right; FP/scan, exam agreement."""
    lines = [f"{'fam':3} {'kind':24} {'n':>3} {'found':>5} " + " ".join(f"{s:>12}" for s in STAGES)
             + f" {'MAE mm':>7} {'bias':>6} {'RADS ok':>7}"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["family"], r["kind"])].append(r)
    for (fam, kind), rs in sorted(groups.items()):
        if kind == "fp":
            continue
        got = [r for r in rs if r["stage"] == "found"]
        err = [r["error_mm"] for r in got]
        mae = f"{np.mean(np.abs(err)):.2f}" if err else "-"
        bias = f"{np.mean(err):+.2f}" if err else "-"
        rads = sum(str(r["rads"]) == r["truth_rads"] for r in got)
        lines.append(f"{fam:3} {kind:24} {len(rs):3d} {len(got):5d} "
                     + " ".join(f"{sum(r['stage'] == s for r in rs):12d}" for s in STAGES)
                     + f" {mae:>7} {bias:>6} {rads:>3}/{len(got):<3}")
    for fam in sorted({r["family"] for r in rows}):
        scans = [r for r in rows if r["family"] == fam and r["kind"] == "fp"]
        nod = [r for r in rows if r["family"] == fam and r["kind"] != "fp" and r["mm"] >= 5.0]
        found = [r for r in nod if r["stage"] == "found"]
        errs = [abs(r["error_mm"]) for r in found]
        lines.append(f"family {fam}: {len(scans)} scans, sensitivity(>=5 mm) {len(found)}/{len(nod)}, "
                     f"FP/scan {np.mean([r['fp'] for r in scans]):.2f}, exam Lung-RADS agreement "
                     f"{np.mean([r['exam_ok'] for r in scans]):.2f}, diameter MAE "
                     f"{np.mean(errs) if errs else float('nan'):.2f} mm")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=("a", "b", "both"), default="both")
    parser.add_argument("--seeds", type=int, default=3, help="phantoms per family")
    parser.add_argument("--first-seed", type=int, default=900_000)
    parser.add_argument("--repo", type=Path, default=Path("triton_repo"))
    parser.add_argument("--version", type=int, default=None)
    parser.add_argument("--details", action="store_true", help="one line per nodule too")
    args = parser.parse_args(argv)
    from models.runtime.ort import OnnxRuntime
    from models.runtime.repository import ModelRepository

    runtime = OnnxRuntime(ModelRepository(args.repo), device="cpu", intra_op_threads=1)
    version = runtime.resolve_version("lung_nodules", args.version)
    rows: list[dict[str, Any]] = []
    for fam in ("a", "b") if args.family == "both" else (args.family,):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rows += analyse_scan(fam, seed, runtime, "lung_nodules", version)
    if args.details:
        for r in rows:
            sys.stdout.write(str(r) + "\n")
    sys.stdout.write(f"lung_nodules v{version}" + "\n")
    for line in table(rows):
        sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
