"""DICOM and image data, task-agnostic: series, volumes, result objects (SR, SEG, SC, GSPS, PDF).

Conventions: arrays are ``(k, r, c)`` (slice, row, column); an affine maps
``(k, r, c, 1)`` to patient LPS in mm; region points are ``(row, column)``.

Reading
    ``imaging.series``   read_instance(path) -> InstanceHeader (header + pixel layout, read once);
                         group_series(paths, known=...) -> {uid: SeriesInfo}; choose(series, MatchRules, prefer=...)
    ``imaging.volume``   load_volume(paths | SeriesInfo.instances, LoadOptions) -> Volume (Volume.grid: its Grid);
                         load_phases(paths) -> tuple[Volume, ...]
    ``imaging.cine``     load_cine(paths) -> Cine (slices of 2D+t; Cine.phase_volume(i) -> Volume)
    ``imaging.mammo``    load_mammogram(path) -> Mammogram (laterality, view, spacing at the breast)
    ``imaging.nifti``    save_nifti / load_nifti / to_nifti / from_nifti (the one LPS<->RAS flip)
Preprocessing
    ``imaging.backend``  ArrayBackend.select("auto" | "numpy" | "cupy"), built once and passed down
    ``imaging.preprocess`` resample_to_spacing, resample_like, window, crop, bounding_box
Writing: every DICOM object the service writes (values in ``imaging.results``: ResultContext, Finding,
Measurement, QualitativeEvaluation, ImageRegion2D, ImageRegion3D, Segment, Code, AlgorithmId, Mark,
ImageRef, RenderedPage, WrittenObject); pipelines hand over these values and never import highdicom or PIL
    ``imaging.seg``      write_seg(source, segments, context, index=...) -> Dataset
    ``imaging.segread``  read_seg(seg, volume) -> [SegmentMask] (any SEG, frames placed by position)
    ``imaging.sr``       write_sr(source | several 2D images, findings, context, seg=...) -> Dataset (TID 1500,
                         SCOORD and SCOORD3D regions)
    ``imaging.capture``  write_summary_capture(source, findings, context, segments=...) -> [Dataset] (key images)
    ``imaging.sc``       write_page_capture(RenderedPage, context, index) -> Dataset (the one SC writer)
    ``imaging.layouts``  the per-pipeline summary pages (text, cardiac, mammography) drawn for the SC
    ``imaging.gsps``     write_gsps(source header, marks, context, instance) -> Dataset
    ``imaging.pdf``      write_pdf_report(source, findings, context) -> Dataset
    ``imaging.bundle``   write_bundle(...) -> [WrittenObject]: SEG, SR, key images (and PDF), saved
    ``imaging.provenance`` save_result(kind, ds, directory) -> WrittenObject (with its UIDs) and
                         save_dataset(ds, directory) -> Path: the one durable save (temp file, fsync, rename,
                         fsync dir)
"""
