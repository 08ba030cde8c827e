"""DICOM and image data, task-agnostic: series, volumes, result objects (SR, SEG, SC)."""
