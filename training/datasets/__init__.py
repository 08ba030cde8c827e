"""Dataset tools for retraining on a hospital's own studies: de-identified export (:mod:`.deidentify`)."""
