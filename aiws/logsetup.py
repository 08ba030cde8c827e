"""Logging set-up for the entry points (the CLI and each worker process), in one place.

Third-party loggers that would print DICOM identifiers, every request or every copied module stay
at WARNING: pynetdicom logs whole C-FIND identifiers (patient ID, name) at INFO. Our own loggers log UIDs
and AE titles only.
"""
from __future__ import annotations

import logging
import re
import sys

from pacs_bridge.scrub import REDACTED, ScrubFilter

#: Loggers kept at WARNING whatever the level asked for.
QUIET = ("pynetdicom", "highdicom", "uvicorn.access", "httpx", "alembic.runtime.plugins")
_OWN_PACKAGES = frozenset({"aiws", "pacs_bridge", "imaging", "models", "plugins", "training"})
#: A quoted string (single, double or back quotes) of at most a line: a value in a library's message.
_QUOTED = re.compile(r"""(['"`])[^'"`\n]{0,1000}?\1""")


class LibraryValueFilter(logging.Filter):
    """A handler filter for records of third-party libraries and captured warnings: every quoted string
    in them becomes ``<value>``. Those are attribute values: pydicom's ``Invalid value for VR DA: '...'``,
    highdicom's and pydicom's ``The string "..." is unlikely to represent the intended person name`` (a
    name in lower case passes :class:`ScrubFilter`, which keeps quoted lower-case words). Our own
    records are left to :class:`ScrubFilter`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".")[0] not in _OWN_PACKAGES:
            record.msg, record.args = _QUOTED.sub(REDACTED, record.getMessage()), None
        return True


def setup_logging(level: int, fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s") -> None:
    """Root handler with *fmt*; warnings go to the log; every record passes :class:`ScrubFilter` (no tag values)."""
    logging.basicConfig(level=level, format=fmt)
    logging.captureWarnings(True)  # pydicom warns with the offending value: scrubbed like any record
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, LibraryValueFilter) for f in handler.filters):
            handler.addFilter(LibraryValueFilter())  # before ScrubFilter, which keeps a quoted lower-case word
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


class _Console(logging.Handler):
    """Bare messages to standard output (INFO) or standard error (WARNING and up), looked up at each record so
    that a redirected or captured stream gets them."""

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


#: What an ``aiws`` command tells the person who ran it (its result, tables, the next step), as opposed to
#: the service's log: ``CONSOLE.info`` goes to standard output, ``CONSOLE.error`` to standard error, each
#: message as it is, whatever the log level and format. Not propagated to the root logger.
CONSOLE = logging.getLogger("aiws.console")
CONSOLE.setLevel(logging.INFO)
CONSOLE.propagate = False
if not any(isinstance(h, _Console) for h in CONSOLE.handlers):
    CONSOLE.addHandler(_Console())
