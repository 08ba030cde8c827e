"""The ledger: SQLite (WAL) record of instances, studies, jobs, results, sends and audit."""
from aiws.ledger.custody import InstanceRefused
from aiws.ledger.db import Ledger
from aiws.ledger.rows import (
    InstanceRow,
    JobRow,
    NewJob,
    NewResult,
    QuarantineItem,
    QuarantineRow,
    ResultRow,
    SendRow,
    StudyLabels,
    StudyRow,
)

__all__ = [
    "InstanceRefused",
    "InstanceRow",
    "JobRow",
    "Ledger",
    "NewJob",
    "NewResult",
    "QuarantineItem",
    "QuarantineRow",
    "ResultRow",
    "SendRow",
    "StudyLabels",
    "StudyRow",
]
