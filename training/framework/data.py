"""Datasets for the loop: cached MONAI datasets, the validation split, k folds, endless batches.

Tasks build their training samples with :func:`cached_dataset` (deterministic transforms cached once, random
augmentation applied per draw); the loop splits cases with :func:`split_cases` / :func:`fold_splits` and draws
batches from :func:`endless`.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from torch.utils.data import DataLoader, Dataset

    from training.framework.config import RunConfig

T = TypeVar("T")


def cached_dataset(items: Sequence[dict[str, Any]], deterministic: Any, random: Any, config: RunConfig,
                   seed: int) -> Dataset[Any]:
    """A dataset of *items* (dicts of numpy arrays) through ``deterministic`` then ``random`` (MONAI
    ``Compose`` objects or None). With ``train.cache_rate`` > 0 the deterministic part's output is kept in
    memory (``monai.data.CacheDataset``), so only the augmentation runs per draw. *seed* seeds the random
    transforms (each DataLoader worker re-seeds from it through MONAI's worker_init_fn)."""
    from monai.data import CacheDataset, Dataset
    from monai.transforms import Compose

    chain = [t for t in (deterministic, random) if t is not None]
    transform = Compose(chain)
    transform.set_random_state(seed=seed % (2 ** 32))
    if config.train.cache_rate > 0:
        return CacheDataset(list(items), transform=transform, cache_rate=config.train.cache_rate,
                            num_workers=max(config.train.workers, 1), progress=False, copy_cache=True)
    return Dataset(list(items), transform=transform)


def split_cases(groups: Sequence[str], val_fraction: float, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Indices (train, validation) of the cases whose group keys are *groups*: a random *val_fraction* of the
    groups (at least one group each side) goes to validation, every case of a group on the same side.

    Raises:
        ValueError: fewer than 2 groups.
    """
    keys = sorted(set(groups))
    if len(keys) < 2:
        raise ValueError(f"{len(keys)} usable case group(s): a validation split needs at least 2")
    order = [keys[i] for i in rng.permutation(len(keys))]
    n_val = min(max(1, round(len(keys) * val_fraction)), len(keys) - 1)
    val = set(order[:n_val])
    return [i for i, g in enumerate(groups) if g not in val], [i for i, g in enumerate(groups) if g in val]


def fold_splits(groups: Sequence[str], folds: int, rng: np.random.Generator) -> list[tuple[list[int], list[int]]]:
    """*folds* (train, validation) index pairs: each group of cases validates in exactly one fold.

    Raises:
        ValueError: fewer than 2 folds, or fewer groups than folds.
    """
    keys = sorted(set(groups))
    if folds < 2 or len(keys) < folds:
        raise ValueError(f"--folds {folds}: needs 2 <= K <= the number of usable case groups ({len(keys)})")
    order = [keys[i] for i in rng.permutation(len(keys))]
    fold_of = {key: k % folds for k, key in enumerate(order)}
    return [([i for i, g in enumerate(groups) if fold_of[g] != k], [i for i, g in enumerate(groups) if fold_of[g] == k])
            for k in range(folds)]


def pick(items: Sequence[T], indices: Sequence[int]) -> list[T]:
    return [items[i] for i in indices]


def endless(loader: DataLoader[Any]) -> Iterator[Any]:
    """Batches of *loader* for ever (a new shuffled epoch whenever one ends).

    Raises:
        ValueError: the loader yields nothing (fewer samples than one batch with drop_last).
    """
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the training dataset gives no batch (fewer samples than batch_size?)")
