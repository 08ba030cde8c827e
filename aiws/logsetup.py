"""Logging set-up for the entry points (the CLI and each worker process), in one place.

Third-party loggers that would print DICOM identifiers, every request or every copied module stay
at WARNING: pynetdicom logs whole C-FIND identifiers (patient ID, name) at INFO. Our own loggers log UIDs
and AE titles only.
"""
from __future__ import annotations

import logging

#: Loggers kept at WARNING whatever the level asked for.
QUIET = ("pynetdicom", "highdicom", "uvicorn.access", "httpx")


def setup_logging(level: int, fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s") -> None:
    logging.basicConfig(level=level, format=fmt)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
