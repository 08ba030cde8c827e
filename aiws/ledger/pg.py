"""PostgreSQL backend of the ledger: a connection that offers the Ledger what it uses of :mod:`sqlite3`.

The ledger's SQL (and any code written against :class:`aiws.ledger.Ledger`) is SQLite's dialect with ``?``
parameters; :func:`aiws.ledger.pg_sql.translate` turns it into PostgreSQL's in ONE place (cached per statement
and connection). Rows index by name and by position as :class:`sqlite3.Row` does;
psycopg errors are raised as the :mod:`sqlite3` exception of the same kind, so ``except sqlite3.Error`` (and
``IntegrityError``) keep working.

Writers are serialized as SQLite's ``BEGIN IMMEDIATE`` does: ``BEGIN`` then ``pg_advisory_xact_lock`` on one
key, so every read-then-write of the ledger (claims, the audit chain, study completion) is atomic across all
the nodes that share the database, with no statement rewritten for it. Claims of jobs and sends are also held
by a session advisory lock of the claiming process (:class:`Claims`): when a node dies, its connection closes,
PostgreSQL drops its locks, and any other node may put the work back in the queue; a live node's work is never
taken again.
"""
from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.types.numeric import NumericLoader

from aiws.errors import AiwsError
from aiws.ledger.pg_sql import Catalog, UnsupportedStatement, translate

LOGGER = logging.getLogger(__name__)

#: ``pg_advisory_xact_lock`` key every write transaction takes at BEGIN ("AIWSWRIT").
WRITE_LOCK = 0x4149_5753_5752_4954
#: First key of the session locks that hold claims (second key: the row id).
CLAIM_KEYS = {"job": 0x4149_5701, "send": 0x4149_5702}
ALEMBIC_DIR = Path(__file__).with_name("alembic")
#: alembic keeps its running context in module globals: one upgrade at a time per process (across processes
#: and nodes, the advisory lock in alembic/env.py orders them).
_ALEMBIC_LOCK = threading.Lock()


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


# -- rows ---------------------------------------------------------------------------------------------
class PgRow(tuple):  # type: ignore[type-arg]
    """A row that indexes by position and by (case-insensitive) column name, like :class:`sqlite3.Row`."""

    _index: ClassVar[dict[str, int]] = {}
    _names: ClassVar[tuple[str, ...]] = ()

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._index[key.lower()])
            except KeyError:
                raise IndexError(f"no item with that key: {key!r}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


@lru_cache(maxsize=512)
def _row_class(names: tuple[str, ...]) -> type[PgRow]:
    index = {n.lower(): i for i, n in reversed(list(enumerate(names)))}
    return type("PgRow", (PgRow,), {"_index": index, "_names": names, "__slots__": ()})


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    cls = _row_class(tuple(c.name for c in cursor.description or ()))
    return cls


class _NumberLoader(NumericLoader):
    """``numeric`` (what SUM and AVG of integers give) as int or float, as SQLite returns them."""

    def load(self, data: Any) -> Any:
        value: Decimal = super().load(data)
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)


# -- errors -------------------------------------------------------------------------------------------
_ERROR_MAP: tuple[tuple[type[Exception], type[sqlite3.Error]], ...] = (
    (pg_errors.IntegrityError, sqlite3.IntegrityError),
    (pg_errors.DataError, sqlite3.DataError),
    (pg_errors.ProgrammingError, sqlite3.OperationalError),  # SQLite: "no such table", syntax errors
    (pg_errors.OperationalError, sqlite3.OperationalError),
    (pg_errors.NotSupportedError, sqlite3.NotSupportedError),
    (pg_errors.InternalError, sqlite3.InternalError),
    (pg_errors.InterfaceError, sqlite3.InterfaceError),
    (psycopg.Error, sqlite3.DatabaseError),
)


def as_sqlite_error(exc: psycopg.Error) -> sqlite3.Error:
    """The :mod:`sqlite3` exception of the same kind (the psycopg one is its ``__cause__``)."""
    for pg_type, lite_type in _ERROR_MAP:
        if isinstance(exc, pg_type):
            text = exc.diag.message_primary if isinstance(exc, psycopg.DatabaseError) and exc.diag.message_primary \
                else str(exc)
            return lite_type(text)
    return sqlite3.DatabaseError(str(exc))


# -- connections --------------------------------------------------------------------------------------
class PgCursor:
    """The result of :meth:`PgConnection.execute`: fetchone, fetchall, iteration, rowcount, lastrowid."""

    def __init__(self, cursor: psycopg.Cursor[Any] | None, lastrowid: int | None = None) -> None:
        self._cursor = cursor
        self.lastrowid = lastrowid
        self.rowcount = cursor.rowcount if cursor is not None else -1

    @property
    def description(self) -> Any:
        return self._cursor.description if self._cursor is not None else None

    def fetchone(self) -> PgRow | None:
        if self._cursor is None or self._cursor.description is None:
            return None
        try:
            return self._cursor.fetchone()
        except psycopg.Error as exc:
            raise as_sqlite_error(exc) from exc

    def fetchall(self) -> list[PgRow]:
        if self._cursor is None or self._cursor.description is None:
            return []
        try:
            return self._cursor.fetchall()
        except psycopg.Error as exc:
            raise as_sqlite_error(exc) from exc

    def __iter__(self) -> Iterator[PgRow]:
        return iter(self.fetchall())


_BEGIN = re.compile(r"^\s*BEGIN(\s+(DEFERRED|IMMEDIATE|EXCLUSIVE))?(\s+TRANSACTION)?\s*;?\s*$", re.I)
_PRAGMA = re.compile(r"^\s*PRAGMA\b", re.I)


def _params(params: Sequence[Any]) -> tuple[Any, ...]:
    # SQLite stores booleans as 0/1 in INTEGER columns; PostgreSQL would refuse a boolean in a BIGINT column
    return tuple(int(p) if isinstance(p, bool) else p for p in params)


class PgConnection:
    """One psycopg connection (autocommit; transactions are the ledger's explicit BEGIN … COMMIT)."""

    def __init__(self, url: str, catalog: Callable[[], Catalog]) -> None:
        try:
            self._con = psycopg.connect(url, autocommit=True, row_factory=_row_factory)
        except psycopg.Error as exc:
            raise as_sqlite_error(exc) from exc
        self._con.adapters.register_loader("numeric", _NumberLoader)
        self._catalog = catalog
        self._cache: dict[tuple[str, bool], tuple[str, bool]] = {}

    @property
    def broken(self) -> bool:
        return self._con.closed or self._con.broken

    @property
    def backend_pid(self) -> int:
        return int(self._con.info.backend_pid)

    def _translate(self, sql: str, with_id: bool) -> tuple[str, bool]:
        key = (sql, with_id)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = translate(sql, self._catalog(), with_id)
        return hit

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        begin = _BEGIN.match(sql)
        try:
            if begin is not None:
                self._con.execute("BEGIN")
                if (begin.group(2) or "").upper() in ("IMMEDIATE", "EXCLUSIVE"):
                    self._con.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                return PgCursor(None)
            if _PRAGMA.match(sql):  # SQLite settings: nothing to do on PostgreSQL
                return PgCursor(None)
            statement, returns_id = self._translate(sql, True)
            cursor = self._con.execute(statement, _params(params))
            if not returns_id:
                return PgCursor(cursor)
            ids = cursor.fetchall()
            return PgCursor(cursor, int(ids[-1][0]) if ids else None)
        except psycopg.Error as exc:
            raise as_sqlite_error(exc) from exc

    def executemany(self, sql: str, seq_of_params: Sequence[Sequence[Any]]) -> PgCursor:
        statement, _ = self._translate(sql, False)
        try:
            with self._con.cursor() as cursor:
                cursor.executemany(statement, [_params(p) for p in seq_of_params])
                return PgCursor(cursor)
        except psycopg.Error as exc:
            raise as_sqlite_error(exc) from exc

    def executescript(self, script: str) -> PgCursor:
        raise UnsupportedStatement("executescript: the PostgreSQL schema is made by alembic "
                                   "(aiws/ledger/alembic), not by a script")

    def close(self) -> None:
        self._con.close()


class Claims:
    """Session advisory locks that say "this process holds job/send N" (one connection per Ledger, shared by
    its threads). PostgreSQL drops them when the process dies, however it dies."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._lock = threading.Lock()
        self._con: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._con is None or self._con.closed or self._con.broken:
            if self._con is not None:
                LOGGER.warning("ledger: the claims connection was lost; this process's claims are void")
            # keepalives both ways: the server ends the session of a host that vanished (no FIN) in ~25 s,
            # which releases its claims; this side notices a dead server as soon
            self._con = psycopg.connect(
                self._url, autocommit=True, keepalives=1, keepalives_idle=10, keepalives_interval=5,
                keepalives_count=3,
                options="-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3")
        return self._con

    def hold(self, kind: str, row_id: int) -> bool:
        """Hold a claim (called inside the claiming transaction, so no sweep sees it unheld). False when
        another session holds it (a claim that was never released: the row is not taken)."""
        with self._lock:
            try:
                row = self._connection().execute("SELECT pg_try_advisory_lock(%s, %s)",
                                                 (CLAIM_KEYS[kind], row_id)).fetchone()
            except psycopg.Error as exc:
                raise as_sqlite_error(exc) from exc
        return bool(row and row[0])

    def release(self, kind: str, row_id: int) -> bool:
        """Give a claim up; False when this process did not hold it (any more)."""
        with self._lock:
            if self._con is None or self._con.closed or self._con.broken:
                return False
            try:
                row = self._con.execute("SELECT pg_advisory_unlock(%s, %s)", (CLAIM_KEYS[kind], row_id)).fetchone()
            except psycopg.Error as exc:
                if self._con.closed or self._con.broken:  # the session, and every claim it held, is gone
                    return False
                raise as_sqlite_error(exc) from exc
        return bool(row and row[0])

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None


def unheld(kind: str, id_column: str) -> str:
    """SQL condition: no live session holds the claim of the row whose id is *id_column*."""
    return (f" AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype='advisory' AND l.granted"
            f" AND l.database=(SELECT oid FROM pg_database WHERE datname=current_database())"
            f" AND l.classid={CLAIM_KEYS[kind]} AND l.objsubid=2 AND l.objid::text::bigint={id_column})")


# -- schema -------------------------------------------------------------------------------------------
def _alembic_config() -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise sqlite3.OperationalError(f"{ALEMBIC_DIR}: no alembic revision")
    return str(head)


def stored_revision(con: psycopg.Connection[Any]) -> str | None:
    """The alembic revision a database records, or None for an empty database."""
    if con.execute("SELECT to_regclass('alembic_version')").fetchone()[0] is None:  # type: ignore[index]
        return None
    row = con.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if row is None else str(row[0])


def upgrade(url: str) -> None:
    """Bring the database to the newest revision (``alembic upgrade head``, run in code: no alembic.ini).

    Raises:
        SchemaTooNew: the database records a revision this code does not know (written by a newer AIWS);
            nothing is changed.
    """
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from aiws.ledger.schema import SchemaTooNew

    cfg = _alembic_config()
    script = ScriptDirectory.from_config(cfg)
    known = {rev.revision for rev in script.walk_revisions()}
    with psycopg.connect(url, autocommit=True) as con:
        stored = stored_revision(con)
    if stored is not None and stored == script.get_current_head():
        return
    too_new = SchemaTooNew(f"ledger {redact(url)}: schema revision {stored} is newer than this AIWS understands "
                           f"({head_revision()}); run the AIWS version that wrote it, or restore a backup")
    if stored is not None and stored not in known:
        raise too_new
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(url), poolclass=NullPool)
    try:
        with _ALEMBIC_LOCK, engine.connect() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    except CommandError as exc:  # a newer AIWS migrated it meanwhile
        raise too_new from exc
    finally:
        engine.dispose()


class LedgerUnavailable(AiwsError, sqlite3.OperationalError):
    """The PostgreSQL ledger cannot be reached at open (the message names the URL without its password)."""


class PgBackend:
    """What a :class:`aiws.ledger.Ledger` on PostgreSQL holds: the URL, the catalog, the claims."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            upgrade(url)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0].strip() if str(exc).strip() else type(exc).__name__
            raise LedgerUnavailable(f"ledger {redact(url)}: cannot connect ({reason})") from exc
        except psycopg.Error as exc:
            raise as_sqlite_error(exc) from exc
        self._catalog: Catalog | None = None
        self.claims = Claims(url)

    def catalog(self) -> Catalog:
        if self._catalog is None:
            with psycopg.connect(self.url, autocommit=True) as con:
                self._catalog = Catalog.read(con)
        return self._catalog

    def connect(self) -> PgConnection:
        return PgConnection(self.url, self.catalog)
