"""``python -m training.mammography {train,evaluate,export} ...``: the mammography model's loop (see run.py)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from training.mammography.config import load_config
from training.mammography.run import evaluate_stage, export_stage, train_stage

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.mammography")
    sub = parser.add_subparsers(dest="stage", required=True)
    p = sub.add_parser("train", help="train on phantoms and write the candidate ONNX")
    p.add_argument("--config", type=Path, default=ROOT / "training/mammography/configs/default.json")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--cache", type=Path, default=None, help="folder to keep generated phantom pools")
    p = sub.add_parser("evaluate", help="calibrate and print the quality bars on unseen phantom seeds")
    p.add_argument("run", type=Path)
    p.add_argument("--seeds", type=int, nargs=2, default=None, metavar=("FIRST", "END"))
    p = sub.add_parser("export", help="publish the evaluated candidate into the model repository")
    p.add_argument("run", type=Path)
    p.add_argument("--repo", type=Path, default=ROOT / "triton_repo")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.stage == "train":
        print(f"candidate: {train_stage(load_config(args.config), args.run, args.cache)}")
    elif args.stage == "evaluate":
        metrics = evaluate_stage(args.run, tuple(args.seeds) if args.seeds else None)
        print("\n".join(metrics.lines()))
    else:
        print(f"published version {export_stage(args.run, args.repo)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
