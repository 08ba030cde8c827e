"""Lung-nodule training: what an ML engineer runs (``make train-lung`` does all of it).

1. Data: ``python -m training.lung_nodules.dataset --out DIR --seeds 0:40 --slab-mm 130`` writes
   chest-CT phantoms (:mod:`.phantom`) in the MSD layout (:mod:`training.msd`); any MSD folder with
   ``labelsTr`` (1 = nodule) works too.
2. Train: ``aiws train lung_nodules --data DIR --config training/lung_nodules/configs/shipped.toml``
   -> ``runs/<run>/`` (config + hash, log, metrics.jsonl, learning_curves.png, checkpoints, export/).
3. Evaluate on unseen seeds: ``aiws evaluate runs/<run> --data EVAL_DIR`` (quality bars, FROC).
4. Ship: ``aiws export runs/<run>`` -> next version in ``triton_repo/lung_nodules/`` with its model
   card; running services pick it up at their next job (hot reload, see ``triton_repo/README.md``).
"""
