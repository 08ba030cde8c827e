"""Sepsis risk model: synthetic cohort (:mod:`.cohort`) and training/evaluation (:mod:`.train`).

Run ``python -m training.sepsis`` to regenerate ``plugins/sepsis/model/`` (JSON model + model card).
Uses scikit-learn only (no torch).
"""
