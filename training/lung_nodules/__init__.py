"""Lung-nodule training: what an ML engineer runs (``make train-lung`` does all of it).

1. Data: ``python -m training.lung_nodules.dataset --out DIR --seeds 0:32 --nodules 6:12`` writes
   chest-CT phantoms (:mod:`.phantom`) in the MSD layout (:mod:`training.msd`); any MSD folder with
   ``labelsTr`` (1 = nodule) works too.
2. Train: ``aiws train lung_nodules --data DIR --config training/lung_nodules/configs/shipped.toml``
   -> ``runs/<run>/`` (config + hash, log, metrics.jsonl, learning_curves.png, checkpoints, export/).
3. Second stage: ``aiws rescore runs/<run> --data TUNE_DIR`` fits the false-positive reduction
   (:mod:`.rescore`) on phantoms of other seeds and sets the operating threshold.
4. Evaluate on unseen seeds: ``aiws evaluate runs/<run> --data EVAL_DIR`` (quality bars, FROC).
5. Ship: ``aiws export runs/<run>`` -> next version in ``triton_repo/lung_nodules/`` with its model
   card; running services pick it up at their next job (hot reload, see ``triton_repo/README.md``).
"""
