"""Study assembly by quiet period: a study is complete after ``quiet_seconds`` without a new instance."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

LOGGER = logging.getLogger(__name__)


class StudyStore(Protocol):
    """Where study activity is kept (the ledger implements it)."""

    def studies_quiet_since(self, before: float) -> list[tuple[str, float]]:
        """(study UID, last received epoch s) of studies still receiving, quiet since *before*."""
        ...


class StudyAssembler:
    """Finds the studies that have been quiet for ``quiet_seconds`` and hands them on.

    ``on_complete(study_uid, last_received_at)`` must complete the study
    atomically only if no instance arrived after ``last_received_at``; an
    instance arriving after completion re-opens the study, which then
    completes (and is handed on) again.
    """

    def __init__(
        self, store: StudyStore, quiet_seconds: float, on_complete: Callable[[str, float], bool]
    ) -> None:
        if quiet_seconds < 0:
            raise ValueError(f"quiet_seconds must be >= 0, got {quiet_seconds}")
        self._store = store
        self.quiet_seconds = quiet_seconds
        self._on_complete = on_complete

    def poll(self, now: float) -> list[str]:
        """Complete every study quiet for long enough; return the UIDs completed."""
        done = []
        for uid, last in self._store.studies_quiet_since(now - self.quiet_seconds):
            if self._on_complete(uid, last):
                LOGGER.info("study %s complete after %.0f s quiet", uid, self.quiet_seconds)
                done.append(uid)
        return done
