"""``python -m training.sepsis [--patients N] [--seed S] [--out DIR]``: train and write the model."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from training.sepsis.cohort import CohortSpec
from training.sepsis.train import DEFAULT_OUT, TrainConfig, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.sepsis", description=__doc__)
    parser.add_argument("--patients", type=int, default=CohortSpec.n_patients)
    parser.add_argument("--seed", type=int, default=CohortSpec.seed)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-gbm", action="store_true", help="skip the gradient-boosting reference")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = TrainConfig(cohort=CohortSpec(n_patients=args.patients, seed=args.seed), out_dir=args.out,
                      compare_gbm=not args.no_gbm)
    model = train(cfg)
    for vid, m in model["evaluation"].items():
        print(f"{vid}: AUROC {m['auroc']}  AUPRC {m['auprc']}  Brier {m['brier']}  ECE {m['calibration']['ece']}")
    print(f"reference AUROC: {model['reference_auroc']}")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
