"""Errors raised by :mod:`models.runtime`.

A :class:`~models.errors.RetryLater` subclass means "try the job again later" (the inference
server is down or the model is still loading); any other :class:`~models.errors.ModelError`
fails the job for good.
"""
from __future__ import annotations

from models.errors import ModelError, RetryLater


class ModelConfigError(ModelError):
    """A ``config.pbtxt`` is missing, does not parse, or disagrees with its ONNX file or the inputs."""


class ModelNotFound(ModelError):
    """The model or the requested version is not in the model repository."""


class InferenceFailed(ModelError):
    """The runtime rejected the request or returned something unusable (not transient)."""


class ServerUnavailable(RetryLater):
    """The Triton server cannot be reached or does not answer in time."""


class ModelNotReady(RetryLater):
    """The Triton server is up but the model version is not (yet) loaded."""
