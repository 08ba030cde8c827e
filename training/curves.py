"""Learning-curve PNG from a run's metric rows (loss per log step, validation figures per check)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: (label, marker, value of a validation row) of the lung network's validation curves.
Curve = tuple[str, str, Callable[[dict[str, Any]], float]]
LUNG_CURVES: tuple[Curve, ...] = (
    ("val Dice (1 mm grid)", "o-", lambda v: v.get("dice_net_grid") or 0.0),
    ("val sensitivity >=5 mm @1 FP/scan", "s-", lambda v: v.get("froc", {}).get("1.0", {}).get("sensitivity", 0.0)),
)


def plot_learning_curves(history: Sequence[dict[str, Any]], path: Path, curves: Sequence[Curve] = LUNG_CURVES,
                         loss_label: str = "train loss (Dice + CE)") -> None:
    """Training loss (left) and the validation *curves* (right; by default Dice and sensitivity at 1 FP per
    scan) against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss = [(r["step"], r["loss"]) for r in history if "loss" in r]
    val = [(r["step"], r["validation"]) for r in history if "validation" in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if loss:
        left.plot(*zip(*loss, strict=True), label=loss_label)
    left.set_xlabel("step")
    left.set_ylabel("loss")
    left.legend()
    if val:
        steps = [s for s, _ in val]
        for label, marker, value in curves:
            right.plot(steps, [value(v) for _, v in val], marker, label=label)
    right.set_ylim(0, 1.02)
    right.set_xlabel("step")
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
