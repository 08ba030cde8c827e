"""Errors raised by :mod:`imaging`."""
from __future__ import annotations


class ImagingError(Exception):
    """Base class of every error raised by :mod:`imaging`."""


class RuleError(ImagingError, ValueError):
    """A selection rule is malformed (unknown keyword, bad regex, bad range)."""
