"""Phantom datasets in the MSD layout: the input of ``aiws train lung_nodules --data DIR``.

``python -m training.lung_nodules.dataset --out DIR --seeds 0:40 [--slab-mm 120] [--workers 2]
[--round-juxtapleural 0.5] [--family a|b] [--append]`` writes
``imagesTr/lung_<seed>.nii.gz`` (HU), ``labelsTr/`` (1 = nodule), ``nodulesTr/`` (ground-truth
JSON) and ``dataset.json`` (with the seeds and the phantom configuration). Each phantom depends on its
seed only, so ``--workers`` processes write the same files as one. ``--append`` adds the phantoms to the
cases already in DIR (a training set of both families, issue 28): ``dataset.json`` then lists every case and
``phantom.families`` the seeds and configuration of each family.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from training.lung_nodules.phantom import PhantomConfig, generate_phantom
from training.lung_nodules.phantom_b import PhantomConfigB, generate_phantom_b
from training.msd import Case, read_dataset_json, write_case, write_dataset_json

LOGGER = logging.getLogger(__name__)


def _write_phantom(root: Path, config: PhantomConfig | PhantomConfigB, seed: int) -> str:
    """Generate the phantom of *seed* (family b for a :class:`PhantomConfigB`) as a case of *root*; its name."""
    if isinstance(config, PhantomConfigB):
        phantom, name = generate_phantom_b(seed, config), f"lungb_{seed:05d}"
    else:
        phantom, name = generate_phantom(seed, config), f"lung_{seed:05d}"
    meta = json.loads(phantom.truth_json())
    write_case(root, Case(name, phantom.hu, phantom.grid, (phantom.labels > 0).astype("uint8"), meta))
    LOGGER.info("phantom %s: %s slices of %.2f mm, %d nodules", name, phantom.hu.shape[0],
                phantom.spacing[0], len(phantom.nodules))
    return name


def write_phantom_dataset(root: Path, seeds: Sequence[int], config: PhantomConfig | PhantomConfigB,
                          workers: int = 1, append: bool = False) -> list[str]:
    """Generate one phantom per seed into *root* (MSD layout), in *workers* processes; returns the case names.
    A :class:`PhantomConfigB` writes family B (issue 28; ``family: b`` in dataset.json). With *append*, the
    cases already listed in *root* stay and ``phantom.families`` records each family's seeds and configuration.

    Raises:
        ValueError: *append* with phantoms of a family already in *root* (a seed would be listed twice).
    """
    family = "b" if isinstance(config, PhantomConfigB) else "a"
    before: dict[str, Any] = read_dataset_json(root) if append and (root / "dataset.json").exists() else {}
    families = dict(before.get("phantom", {}).get("families", {})) if before else {}
    if before and not families:  # a one-family dataset written without --append
        old = before.get("phantom", {})
        families[str(old.get("family", "a"))] = {"seeds": old.get("seeds", []), "config": old.get("config", {})}
    if family in families:
        raise ValueError(f"{root}: already has family {family} phantoms; append the other family")
    write = partial(_write_phantom, root, config)
    if workers > 1 and len(seeds) > 1:
        with ProcessPoolExecutor(min(workers, len(seeds))) as pool:
            names = list(pool.map(write, seeds))
    else:
        names = [write(seed) for seed in seeds]
    listed = [Path(item["image"]).name.removesuffix(".nii.gz") for item in before.get("training", [])]
    write_dataset_json(root, listed + names, "AIWS chest CT phantoms with lung nodules (synthetic)",
                       {"0": "background", "1": "nodule"})
    doc = read_dataset_json(root)
    record = {"seeds": list(seeds), "config": json.loads(json.dumps(config.__dict__, default=list))}
    if before:
        families[family] = record
        doc["phantom"] = {"seeds": sorted({int(s) for f in families.values() for s in f["seeds"]}),
                          "families": dict(sorted(families.items()))}
    else:
        doc["phantom"] = record
        if family == "b":
            doc["phantom"]["family"] = "b"
    (root / "dataset.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return names


def dataset_seeds(root: Path) -> list[int]:
    """Phantom seeds of a dataset written by :func:`write_phantom_dataset` (empty for other datasets)."""
    return [int(s) for s in read_dataset_json(root).get("phantom", {}).get("seeds", [])]


def dataset_families(root: Path) -> dict[str, list[int]]:
    """Phantom family -> seeds of a dataset written by :func:`write_phantom_dataset` (``{}`` for other datasets)."""
    phantom = read_dataset_json(root).get("phantom", {})
    if "families" in phantom:
        return {str(k): [int(s) for s in v["seeds"]] for k, v in phantom["families"].items()}
    return {str(phantom.get("family", "a")): [int(s) for s in phantom["seeds"]]} if "seeds" in phantom else {}


def _seeds(text: str) -> list[int]:
    start, _, stop = text.partition(":")
    return list(range(int(start), int(stop))) if stop else [int(v) for v in text.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write lung-nodule phantoms in the MSD layout")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", required=True, help="START:STOP or a comma list")
    parser.add_argument("--slab-mm", type=float, default=None, help="height of a lung slab (default: whole chest)")
    parser.add_argument("--nodules", default="1:5", help="MIN:MAX nodules per phantom")
    parser.add_argument("--max-matrix", type=int, default=512)
    parser.add_argument("--diameter-mm", default="3:30", help="MIN:MAX nodule mean diameter (log-uniform)")
    parser.add_argument("--workers", type=int, default=1, help="phantoms generated in parallel (processes)")
    parser.add_argument("--round-juxtapleural", type=float, default=0.0,
                        help="fraction of juxtapleural nodules drawn round (default 0: the seeds' phantoms as shipped)")
    parser.add_argument("--family", choices=("a", "b"), default="a",
                        help="phantom family (a: the original generator, unchanged; b: the independent one)")
    parser.add_argument("--append", action="store_true",
                        help="add to the cases already in --out (the other family: a training set of both)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers {args.workers}: must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    lo, hi = (int(v) for v in args.nodules.split(":"))
    dmin, dmax = (float(v) for v in args.diameter_mm.split(":"))
    try:
        config: PhantomConfig | PhantomConfigB = PhantomConfig(z_extent_mm=args.slab_mm, nodules=(lo, hi), max_matrix=args.max_matrix,
                               diameter_mm=(dmin, dmax), round_juxtapleural=args.round_juxtapleural)
        if args.family == "b":
            config = PhantomConfigB(z_extent_mm=args.slab_mm, nodules=(lo, hi), max_matrix=args.max_matrix,
                                    diameter_mm=(dmin, dmax))
    except ValueError as exc:
        parser.error(str(exc))
    try:
        names = write_phantom_dataset(args.out, _seeds(args.seeds), config, args.workers, args.append)
    except ValueError as exc:
        parser.error(str(exc))
    LOGGER.info("wrote %d phantoms to %s", len(names), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
