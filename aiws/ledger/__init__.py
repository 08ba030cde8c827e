"""The ledger: SQLite (WAL) record of instances, studies, jobs, results, sends and audit."""
from aiws.ledger.db import Ledger
from aiws.ledger.rows import InstanceRow, JobRow, NewJob, NewResult, ResultRow, SendRow, StudyRow

__all__ = ["Ledger", "InstanceRow", "JobRow", "NewJob", "NewResult", "ResultRow", "SendRow", "StudyRow"]
