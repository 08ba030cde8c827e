"""Mammography training: phantoms, the detector's training loop, calibration, evaluation and export."""
