"""Cardiac MRI: short-axis cine phantoms with truth masks and volumes, segmentation network
training, evaluation against the phantom truth, and export to ``triton_repo/``."""
