"""Coronary calcium: phantoms (gated non-contrast CT with truth per lesion and vessel), lesion
labeller training, evaluation against the phantom truth, and export to ``triton_repo/``."""
