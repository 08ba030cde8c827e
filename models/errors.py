"""Errors raised by :mod:`models`."""
from __future__ import annotations


class ModelError(Exception):
    """Base class of every error raised by :mod:`models`. A job that raises it fails for good."""


class RetryLater(ModelError):
    """A transient condition (inference server down, model not ready): the job is retried later."""


class NoSuitableSeries(ModelError):
    """The routed series do not fit the pipeline (wrong modality, too thick, too few slices)."""
