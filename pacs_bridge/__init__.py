"""DICOM networking, task-agnostic: storage SCP, durable spool, study assembly, SCU sender."""
