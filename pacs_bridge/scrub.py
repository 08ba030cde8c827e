"""Error text without patient data: the one place every stored, shown or logged error goes through.

An exception raised while reading, processing or sending an image can quote a tag value (pydicom:
``Unable to convert 'BIRTH1234X' to 'DA' object``). What the ledger stores, the API, the status page
and ``aiws status`` show, and the log writes is :func:`describe_error`: the exception's type and its
message passed through :func:`scrub_text`, which

* replaces every value it was told about (:func:`patient_values` of the images involved), and
* keeps only the tokens that cannot be a tag value: lowercase words, capitalised and CamelCase words
  (sentences, DICOM keywords, class names), upper-case letters only (AE titles, VRs, statuses),
  short numbers, UIDs, hexadecimal codes, tags, hosts and ports, paths and URLs made of those; a
  quoted string only when it is a UID, a number, a keyword or a lower-case name. Anything else (a
  date, a long number, letters mixed with digits, ``^``, non-ASCII characters …) becomes ``<value>``.

It lives in :mod:`pacs_bridge` (the lowest package that meets DICOM values) so that the receive
path and :mod:`aiws` use the same function.
"""
from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataelem import RawDataElement

LOGGER = logging.getLogger(__name__)

#: What replaces a value.
REDACTED = "<value>"
#: Longest message kept (after scrubbing), in characters.
MAX_MESSAGE_CHARS = 400

_WORD = (r"[a-z][a-z_'-]*(?:\d{1,3}[a-z_'-]*)?|[a-z][a-z_]*(?:-[a-z0-9_]+)+"  # the second: worker-1234-1
         r"|[A-Z][a-z]+(?:[A-Z][a-z0-9]*)*|[A-Z](?:[A-Z_-]{0,30}[A-Z_])?"
         r"|[A-Z][A-Z_-]*\d{1,2}(?:[A-Z_-]+\d?)?")  # the last: AE titles like CT2, MR_3T_B
_NUM = r"[-+]?\d{1,5}(?:\.\d+)?(?:e[-+]?\d+)?|\d+(?:\.\d+){2,}|[-+]?\d+\.\d+"
_NUMBER = rf"(?:{_NUM})(?:[–-](?:{_NUM}))?|0x[0-9A-Fa-f]+"
_TAG = r"\(?[0-9A-Fa-f]{4},\s?[0-9A-Fa-f]{4}\)?"
_HOST = (r"(?:[A-Z][A-Z0-9_ -]{0,15}@)?(?:(?:[a-z0-9-]+\.)+[a-z0-9-]+(?::\d{1,5})?|[a-z0-9-]+:\d{1,5})"
         r"|\[[0-9a-fA-F:]+\](?::\d{1,5})?")
_PATH_PART = r"[a-z0-9_.-]+"  # UIDs and file names of UIDs too
_PATH = rf"~?/(?:{_PATH_PART}/)*(?:{_PATH_PART})?(?::\d+)?"  # not (part/?)*: that backtracks exponentially
_URL = r"<?https?://[a-z0-9./#_%-]+>?"
_SAFE_TOKEN = re.compile(
    rf"(?:{REDACTED}|{_WORD}|{_NUMBER}|{_TAG}|{_HOST}|{_PATH}|{_URL}|[^\w\s]{{1,3}}|\[Errno|\d+\])"
)
_VR = "AE|AS|AT|CS|DA|DS|DT|FD|FL|IS|LO|LT|OB|OD|OF|OL|OV|OW|PN|SH|SL|SQ|SS|ST|SV|TM|UC|UI|UL|UN|UR|US|UT|UV"
_SAFE_QUOTED = re.compile(rf"(?:{_NUMBER}|[A-Z][a-z]+(?:[A-Z][a-z0-9]*)+|{_VR}|[a-z][a-z0-9_.-]*|{_PATH}|)")
_LONG_NUMBER = re.compile(r"(?<![\d.])\d{6,}(?![\d.])")
_QUOTED = re.compile(r"""(?<![A-Za-z0-9])[bru]?(['"`])(.*?)\1(?![A-Za-z0-9])""", re.S)
_EDGE_PUNCT = "()[]{},;:!?'\"`"
_RUNS = re.compile(rf"{re.escape(REDACTED)}(?:[ ^=\\/,;:|-]*{re.escape(REDACTED)})+")

#: Tags whose values identify a patient or a person even outside the Patient module (besides every PN).
_IDENTIFYING_TAGS = frozenset({
    0x00080050,  # AccessionNumber
    0x00080080,  # InstitutionName
    0x00080081,  # InstitutionAddress
    0x00081040,  # InstitutionalDepartmentName
    0x00200010,  # StudyID
    0x00321032,  # RequestingPhysician
    0x00401001,  # RequestedProcedureID
    0x00400009,  # ScheduledProcedureStepID
})
_MIN_VALUE_CHARS = 3
#: Fields of ledger rows and audit details that hold error text.
ERROR_FIELDS = frozenset({"error", "last_error", "reason", "failures", "quarantine_reason"})


def scrub_text(text: str, values: Iterable[str] = (), max_chars: int = MAX_MESSAGE_CHARS) -> str:
    """*text* with every value in *values* and every token that may be a tag value replaced by ``<value>``.

    Spaces are collapsed within each line (lines are kept); the result is at most *max_chars* long.
    Scrubbing scrubbed text changes nothing.
    """
    limit = max(8 * max_chars, 4096)
    if len(text) > limit:  # bounded work whatever an exception holds; the cut word goes (it may be half a value)
        text = text[:limit].rsplit(None, 1)[0] if any(c.isspace() for c in text[:limit]) else ""
    for value in sorted({v for v in values if len(v) >= _MIN_VALUE_CHARS}, key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", REDACTED, text, flags=re.I)
    text = _QUOTED.sub(_quoted, text)
    lines = (" ".join(_token(word) for word in line.split()) for line in text.splitlines())
    out = _RUNS.sub(REDACTED, "\n".join(line for line in lines if line))
    return out if len(out) <= max_chars else out[: max_chars - 1] + "…"


def scrub_fields(row: Any, keys: frozenset[str] = ERROR_FIELDS) -> Any:
    """*row* (a dict, list, or nested) with the text of every field named in *keys* scrubbed (for what is shown
    of rows stored before, or by code that did not scrub)."""
    if isinstance(row, dict):
        return {k: scrub_text(v, max_chars=4000) if k in keys and isinstance(v, str) else scrub_fields(v, keys)
                for k, v in row.items()}
    if isinstance(row, list):
        return [scrub_fields(v, keys) for v in row]
    return row


def describe_error(exc: BaseException, values: Iterable[str] = ()) -> str:
    """``"TypeName: scrubbed message"`` (the type alone for an empty message), with the types of the
    exceptions it was raised from: ``"SendError: … (from OSError)"``."""
    values = tuple(values)
    message = scrub_text(str(exc), values)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    causes, seen = [], {id(exc)}
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen and len(causes) < 3:
        causes.append(type(cause).__name__)
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return text + (f" (from {', '.join(causes)})" if causes else "")


def error_trace(exc: BaseException, limit: int = 5) -> str:
    """Where *exc* was raised: the innermost *limit* frames as ``file.py:line in function``, one a line.

    Frames only (code locations), never the messages of the exceptions or the values of variables.
    """
    frames = traceback.extract_tb(exc.__traceback__)[-limit:]
    return "\n".join(f"  {Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)


def patient_values(paths: Iterable[Path], max_files: int = 8) -> frozenset[str]:
    """Identifying values (every PN, the Patient group 0010, accession number, study ID, institution …) of the
    headers of the first *max_files* DICOM files in *paths*, as raw text, so that :func:`scrub_text` removes them
    even where they are not quoted. Unreadable files are skipped (they cannot have put a value in a message)."""
    found: set[str] = set()
    for path in list(paths)[:max_files]:
        try:
            ds = dcmread(path, stop_before_pixels=True, force=True)
        except Exception as exc:
            LOGGER.debug("no identifying values from %s: %s", path.name, type(exc).__name__)
            continue
        for tag in list(ds.keys()):
            elem = ds.get_item(tag)
            if elem is None or not (tag >> 16 == 0x0010 or tag in _IDENTIFYING_TAGS or elem.VR == "PN"):
                continue
            raw = elem.value
            text = raw.decode("latin-1", "replace") if isinstance(raw, bytes) else str(raw or "")
            if isinstance(elem, RawDataElement) or isinstance(raw, bytes):
                text = text.strip(" \x00")
            found.update(_pieces(text))
    return frozenset(found)


def _pieces(text: str) -> set[str]:
    """A value and its parts (multi-values split on ``\\``, names on ``^`` and ``=``, words on spaces)."""
    out = set()
    for value in text.split("\\"):
        value = value.strip()
        if len(value) >= _MIN_VALUE_CHARS:
            out.add(value)
            out.update(p.strip() for p in re.split(r"[\^= ]", value) if len(p.strip()) >= _MIN_VALUE_CHARS)
    return out


def _quoted(match: re.Match[str]) -> str:
    content = match.group(2)
    quote = match.group(1)
    safe = _SAFE_QUOTED.fullmatch(content) and not _LONG_NUMBER.search(content)
    return f"{quote}{content}{quote}" if safe else REDACTED


def _safe(word: str) -> bool:
    return bool(_SAFE_TOKEN.fullmatch(word)) and not _LONG_NUMBER.search(word)


def _token(word: str) -> str:
    if _safe(word):
        return word
    core = word.strip(_EDGE_PUNCT)
    if core.endswith("."):  # a sentence's full stop
        core = core[:-1]
    if not core:
        return word
    start = word.find(core)
    head, tail = word[:start], word[start + len(core):]
    if "=" in core:  # key=value: the key may stay
        key, _, value = core.partition("=")
        return f"{head}{_token(key) if key else ''}={_token(value) if value else ''}{tail}"
    return f"{head}{core if _safe(core) else REDACTED}{tail}"


class ScrubFilter(logging.Filter):
    """A handler filter: exceptions logged (as ``exc_info`` or as an argument) are written as
    :func:`describe_error` and their frames; warnings and errors, and every message of a third-party logger
    (pydicom, highdicom, pynetdicom, captured warnings …, which quote tag values), are scrubbed whole.
    Our own INFO and DEBUG messages (UIDs, AE titles, counts) are left as they are."""

    def __init__(self, own_prefixes: tuple[str, ...] = ("aiws", "pacs_bridge", "imaging", "models", "plugins",
                                                          "training")) -> None:
        super().__init__()
        self._own = own_prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            record.exc_text = f"{describe_error(exc)}\n{error_trace(exc, limit=12)}"
        if isinstance(record.args, tuple):
            record.args = tuple(describe_error(a) if isinstance(a, BaseException) else a for a in record.args)
        if record.levelno >= logging.WARNING or record.name.split(".")[0] not in self._own:
            record.msg, record.args = scrub_text(record.getMessage(), max_chars=4000), None
        return True
