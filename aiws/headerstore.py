"""The headers of a completed study, read once by the scheduler and handed on to the job's worker.

The scheduler reads every instance of a quiet study back (:mod:`aiws.quarantine`) to route it; those
headers (no pixel data, with each image's pixel layout: :class:`imaging.series.InstanceHeader`) are
kept in ``data_dir/headers/<StudyInstanceUID>.pickle`` so that the worker process running the study's
job groups, chooses and stacks its series without reading them again. The file is written to a
temporary name and renamed; it is a cache, not a record: a missing or unreadable one, or a header
whose file changed since (size or modification time), only means the worker reads that file itself.
The data folder is the service's own (0700): the file is trusted as the ledger next to it is.
"""
from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

from imaging.series import InstanceHeader
from pacs_bridge.uids import validate_uid

LOGGER = logging.getLogger(__name__)

HEADERS_DIR = "headers"  # under data_dir


def _path(data_dir: Path, study_uid: str) -> Path:
    return data_dir / HEADERS_DIR / f"{validate_uid(study_uid, 'StudyInstanceUID')}.pickle"


def save_headers(data_dir: Path, study_uid: str, headers: Sequence[InstanceHeader]) -> None:
    """Keep *headers* for the study's jobs (replacing those of an earlier completion)."""
    path = _path(data_dir, study_uid)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as fp:
        pickle.dump(list(headers), fp, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def load_headers(data_dir: Path, study_uid: str, paths: Sequence[Path] | None = None) -> Mapping[Path, InstanceHeader]:
    """The headers kept for the study (those of *paths* only, when given); empty when none are kept."""
    path = _path(data_dir, study_uid)
    try:
        with open(path, "rb") as fp:
            headers: list[InstanceHeader] = pickle.load(fp)
    except FileNotFoundError:
        return {}
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        LOGGER.warning("study %s: kept headers unreadable (%s); the files are read again", study_uid,
                       type(exc).__name__)
        return {}
    wanted = None if paths is None else {Path(p) for p in paths}
    return {h.path: h for h in headers if wanted is None or h.path in wanted}


def drop_headers(data_dir: Path, study_uid: str) -> None:
    """Forget the study's headers (retention)."""
    _path(data_dir, study_uid).unlink(missing_ok=True)
