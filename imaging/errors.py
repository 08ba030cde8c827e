"""Errors raised by :mod:`imaging`."""
from __future__ import annotations


class ImagingError(Exception):
    """Base class of every error raised by :mod:`imaging`."""


class RuleError(ImagingError, ValueError):
    """A selection rule is malformed (unknown keyword, bad regex, bad range)."""


class ReadError(ImagingError):
    """A file cannot be read as the image it claims to be (missing attribute, unsupported pixel format)."""


class GeometryError(ImagingError):
    """Slices do not form the requested volume (mixed orientations, duplicate positions, irregular spacing)."""


class WriteError(ImagingError):
    """A result object cannot be built from the given source and findings."""
