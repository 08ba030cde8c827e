"""Errors raised by the composition root."""
from __future__ import annotations


class AiwsError(Exception):
    """Base class of every error raised by :mod:`aiws`."""


class ConfigError(AiwsError, ValueError):
    """The configuration is invalid; the message names the key."""


class NotFound(AiwsError, KeyError):
    """A named object (AE, source, destination, study, job) does not exist."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message
        return str(self.args[0]) if self.args else ""


class Conflict(AiwsError):
    """A named object already exists."""
