"""Case durations predicted from history: the chosen quantile (median by default) of past
durations for the same procedure and surgeon when there are at least ``MIN_RECORDS`` of them,
else for the procedure (all surgeons). Rounded up to whole minutes."""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from plugins.errors import FieldProblem, InvalidInput, KnowledgeBaseError
from plugins.or_planning.models import Case, HistoryRow

BUNDLED_HISTORY = Path(__file__).resolve().parent / "data" / "history.csv"
MIN_RECORDS = 3


@dataclass(frozen=True)
class History:
    by_pair: dict[tuple[str, str], np.ndarray]
    by_procedure: dict[str, np.ndarray]

    @classmethod
    def from_rows(cls, rows: list[HistoryRow]) -> History:
        pairs: dict[tuple[str, str], list[float]] = {}
        procs: dict[str, list[float]] = {}
        for r in rows:
            proc = r.procedure.strip().lower()
            procs.setdefault(proc, []).append(r.duration_minutes)
            if r.surgeon:
                pairs.setdefault((proc, r.surgeon), []).append(r.duration_minutes)
        return cls({k: np.array(v) for k, v in pairs.items()}, {k: np.array(v) for k, v in procs.items()})

    @classmethod
    def bundled(cls, path: Path = BUNDLED_HISTORY) -> History:
        """The bundled synthetic history (``procedure,surgeon,duration_minutes``)."""
        try:
            with path.open(newline="") as fh:
                rows = [HistoryRow(procedure=r["procedure"], surgeon=r["surgeon"] or None,
                                   duration_minutes=float(r["duration_minutes"])) for r in csv.DictReader(fh)]
        except (OSError, KeyError, ValueError) as exc:
            raise KnowledgeBaseError(f"operating-room history {path}: unreadable ({exc!r})") from exc
        return cls.from_rows(rows)

    def predict(self, case: Case, index: int, quantile: float) -> tuple[int, str]:
        """(minutes, how). Raises :class:`InvalidInput` naming the case when history is too thin."""
        if case.duration_minutes is not None:
            return case.duration_minutes, "given"
        proc = (case.procedure or "").strip().lower()
        for sample, scope in ((self.by_pair.get((proc, case.surgeon)), "procedure+surgeon"),
                              (self.by_procedure.get(proc), "procedure")):
            if sample is not None and len(sample) >= MIN_RECORDS:
                minutes = int(math.ceil(float(np.quantile(sample, quantile)) - 1e-9))
                return minutes, f"history {scope} q{quantile:g} (n={len(sample)})"
        raise InvalidInput("or_planning", [FieldProblem(
            f"cases[{index}].duration_minutes",
            f"not given, and fewer than {MIN_RECORDS} history records for procedure {case.procedure!r}")])
