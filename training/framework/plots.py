"""The run's figures as PNG (matplotlib, Agg): learning curves, FROC, Bland–Altman, confusion matrix.

Every function writes one file and returns its path; the loop puts curves in ``RUN/curves/`` and evaluation
figures in ``RUN/evaluation/``, and the model card embeds them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.framework.metrics import agreement


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path


def learning_curves(losses: Sequence[tuple[int, float]], validations: Sequence[Mapping[str, Any]], monitor: str,
                    path: Path) -> Path:
    """Training loss per logged step (left) and the monitored validation metric per validation (right)."""
    plt = _pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    if losses:
        steps, values = zip(*losses, strict=True)
        ax[0].plot(steps, values)
    ax[0].set_xlabel("iteration")
    ax[0].set_title("training loss")
    points = [(v["iteration"], v[monitor]) for v in validations if v.get(monitor) is not None]
    if points:
        steps, values = zip(*points, strict=True)
        ax[1].plot(steps, values, marker="o")
    ax[1].set_xlabel("iteration")
    ax[1].set_title(f"validation {monitor}")
    return _save(fig, path)


def froc_curve(records: Sequence[Mapping[str, Any]], path: Path, title: str = "FROC") -> Path:
    """Sensitivity against false positives per case, from the records' ``candidate_scores``/``candidate_hits``/
    ``n_truth`` (see :func:`training.framework.metrics.froc`)."""
    plt = _pyplot()
    n_truth = max(1, sum(int(r.get("n_truth", 0)) for r in records))
    entries = sorted(((float(s), c, int(h)) for c, r in enumerate(records)
                      for s, h in zip(r.get("candidate_scores", []), r.get("candidate_hits", []), strict=True)),
                     key=lambda e: -e[0])
    found: set[tuple[int, int]] = set()
    fps, xs, ys = 0, [0.0], [0.0]
    for _, case, hit in entries:
        if hit < 0:
            fps += 1
        else:
            found.add((case, hit))
        xs.append(fps / max(1, len(records)))
        ys.append(len(found) / n_truth)
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.step(xs, ys, where="post")
    ax.set_xscale("symlog", linthresh=0.125)
    ax.set_xlabel("false positives per case")
    ax.set_ylabel("sensitivity")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    return _save(fig, path)


def bland_altman(truth: Sequence[float], predicted: Sequence[float], path: Path, what: str) -> Path:
    """Difference (predicted - truth) against the mean, with the bias and 95 % limits of agreement."""
    plt = _pyplot()
    t, p = np.asarray(truth, dtype=float), np.asarray(predicted, dtype=float)
    keep = ~(np.isnan(t) | np.isnan(p))
    stats = agreement(t.tolist(), p.tolist())
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.scatter((t[keep] + p[keep]) / 2, p[keep] - t[keep], s=12)
    for key, style in (("bias", "-"), ("loa_low", "--"), ("loa_high", "--")):
        if not np.isnan(stats[key]):
            ax.axhline(stats[key], linestyle=style, color="grey")
    ax.set_xlabel(f"mean of truth and predicted {what}")
    ax.set_ylabel(f"predicted - truth {what}")
    ax.set_title(f"Bland-Altman: {what}")
    return _save(fig, path)


def confusion_matrix(matrix: np.ndarray, labels: Sequence[str], path: Path, title: str) -> Path:
    """Counts with true labels as rows and predicted labels as columns."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(labels), 1.0 + 0.6 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(int(n)), ha="center", va="center")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(title)
    return _save(fig, path)
