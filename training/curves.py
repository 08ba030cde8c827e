"""Learning-curve PNG from a run's metric rows (loss per log step, validation figures per check)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_learning_curves(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Training loss (left) and validation Dice / sensitivity at 1 FP per scan (right) against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss = [(r["step"], r["loss"]) for r in history if "loss" in r]
    val = [(r["step"], r["validation"]) for r in history if "validation" in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if loss:
        left.plot(*zip(*loss, strict=True), label="train loss (Dice + CE)")
    left.set_xlabel("step")
    left.set_ylabel("loss")
    left.legend()
    if val:
        steps = [s for s, _ in val]
        right.plot(steps, [v.get("dice_net_grid") or 0.0 for _, v in val], "o-", label="val Dice (1 mm grid)")
        right.plot(steps, [v.get("froc", {}).get("1.0", {}).get("sensitivity", 0.0) for _, v in val], "s-",
                   label="val sensitivity >=5 mm @1 FP/scan")
    right.set_ylim(0, 1.02)
    right.set_xlabel("step")
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
