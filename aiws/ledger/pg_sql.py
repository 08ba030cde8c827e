"""SQLite's dialect → PostgreSQL's, in ONE place, for every statement the ledger (and code written against
:class:`aiws.ledger.Ledger`) runs on the PostgreSQL backend (:mod:`aiws.ledger.pg`).

:func:`translate` works on the statement with its string literals masked, so nothing inside quotes changes
(apart from ``%`` → ``%%``, which psycopg needs): ``?`` → ``%s``; ``INSERT OR IGNORE`` → ``ON CONFLICT DO
NOTHING``; ``INSERT OR REPLACE`` and a target-less ``ON CONFLICT DO UPDATE`` → an upsert on the table's key (from
the :class:`Catalog`), bare column names in its ``SET`` expressions qualified (PostgreSQL finds them ambiguous);
two-argument ``MAX``/``MIN`` → ``GREATEST``/``LEAST``; ``json_extract(x, '$.a.b')`` → ``x::jsonb #>> '{a,b}'``;
``IFNULL`` → ``COALESCE``; ``GROUP_CONCAT`` → ``STRING_AGG``; ``LIKE`` → ``ILIKE`` (SQLite's LIKE ignores ASCII
case); ``==`` → ``=``; ``CAST(… AS INTEGER|REAL)`` → 64-bit types; an INSERT into a table with an ``id``
identity gets ``RETURNING id`` (what ``lastrowid`` reads).
"""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True)
class Catalog:
    """What :func:`translate` needs to know of the tables: columns, keys (primary first) and identity ids."""

    columns: dict[str, tuple[str, ...]]
    keys: dict[str, tuple[tuple[str, ...], ...]]
    identity: frozenset[str]

    @classmethod
    def read(cls, con: psycopg.Connection[Any]) -> Catalog:
        columns: dict[str, list[str]] = {}
        for table, column in con.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema=current_schema()"
                " ORDER BY table_name, ordinal_position"):
            columns.setdefault(table, []).append(column)
        keys: dict[str, list[tuple[str, ...]]] = {}
        for table, cols, _primary in con.execute(
                "SELECT t.relname, array_agg(a.attname::text ORDER BY k.n), i.indisprimary FROM pg_index i"
                " JOIN pg_class t ON t.oid=i.indrelid JOIN pg_namespace s ON s.oid=t.relnamespace"
                " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n)"
                " JOIN pg_attribute a ON a.attrelid=t.oid AND a.attnum=k.attnum"
                " WHERE i.indisunique AND s.nspname=current_schema() GROUP BY t.relname, i.indexrelid, i.indisprimary"
                " ORDER BY t.relname, i.indisprimary DESC, i.indexrelid"):
            keys.setdefault(table, []).append(tuple(cols))
        identity = {t for (t,) in con.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema=current_schema()"
            " AND column_name='id' AND (is_identity='YES' OR column_default LIKE 'nextval(%%')")}
        return cls({t: tuple(c) for t, c in columns.items()}, {t: tuple(k) for t, k in keys.items()},
                   frozenset(identity))


_STRING = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")
_MASK = re.compile(r"\x00(\d+)\x00")
_INSERT = re.compile(r"^\s*INSERT\s+(?:OR\s+(IGNORE|REPLACE)\s+)?INTO\s+([A-Za-z_][\w.]*)\s*(\(([^()]*)\))?",
                     re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
_CONFLICT_NO_TARGET = re.compile(r"\bON\s+CONFLICT\s+DO\s+UPDATE\b", re.I)
_SIMPLE = (
    (re.compile(r"(?<![<>!=])==", re.I), "="),
    (re.compile(r"(?<![A-Za-z_])LIKE\b", re.I), "ILIKE"),
    (re.compile(r"\bIFNULL\s*\(", re.I), "COALESCE("),
    (re.compile(r"\bAS\s+INTEGER\b", re.I), "AS BIGINT"),
    (re.compile(r"\bAS\s+REAL\b", re.I), "AS DOUBLE PRECISION"),
)
_FUNCTION = re.compile(r"\b(MAX|MIN|JSON_EXTRACT|GROUP_CONCAT)\s*\(", re.I)


class UnsupportedStatement(sqlite3.OperationalError):
    """A statement the PostgreSQL backend cannot translate (the message says which part)."""


def _split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments of a masked call's inside."""
    args, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(text[start:i])
            start = i + 1
    args.append(text[start:])
    return args


def _rewrite_functions(sql: str, strings: list[str]) -> str:
    out, pos = [], 0
    while (m := _FUNCTION.search(sql, pos)) is not None:
        depth, end = 1, m.end()
        while depth and end < len(sql):
            depth += {"(": 1, ")": -1}.get(sql[end], 0)
            end += 1
        inner = _rewrite_functions(sql[m.end():end - 1], strings)
        args = _split_args(inner)
        name = m.group(1).upper()
        if name in ("MAX", "MIN") and len(args) > 1:
            call = f"{'GREATEST' if name == 'MAX' else 'LEAST'}({inner})"
        elif name == "JSON_EXTRACT" and len(args) == 2 and (path := _MASK.fullmatch(args[1].strip())):
            steps = strings[int(path.group(1))][1:-1].removeprefix("$").strip(".").split(".")
            strings.append("'{" + ",".join(steps) + "}'")
            call = f"(CAST({args[0]} AS JSONB) #>> \x00{len(strings) - 1}\x00)"
        elif name == "GROUP_CONCAT" and len(args) in (1, 2):
            strings.append("','")
            sep = args[1].strip() if len(args) == 2 else f"\x00{len(strings) - 1}\x00"
            call = f"STRING_AGG(CAST({args[0]} AS TEXT), {sep})"
        else:
            call = f"{m.group(1)}({inner})"
        out.append(sql[pos:m.start()] + call)
        pos = end
    out.append(sql[pos:])
    return "".join(out)


def _upsert_target(table: str, columns: tuple[str, ...], catalog: Catalog) -> tuple[str, ...]:
    keys = catalog.keys.get(table, ())
    for key in keys:
        if set(key) <= set(columns):
            return key
    if not keys:
        raise UnsupportedStatement(f"INSERT into {table}: no primary key or unique index to resolve a conflict on")
    return keys[0]


_DO_UPDATE_SET = re.compile(r"\bDO\s+UPDATE\s+SET\b", re.I)
_SET_END = re.compile(r"\b(WHERE|RETURNING)\b", re.I)
_BARE_NAME = re.compile(r"(?<![\w.\x00])([A-Za-z_]\w*)(?![\w.(\x00])")


def _qualify_set(sql: str, table: str, columns: tuple[str, ...]) -> str:
    """In ``DO UPDATE SET col = expr``, name the table in *expr*'s bare column references (PostgreSQL finds
    ``value`` ambiguous between the row and ``excluded``; SQLite takes the row's)."""
    m = _DO_UPDATE_SET.search(sql)
    if m is None:
        return sql
    end = _SET_END.search(sql, m.end())
    stop = end.start() if end else len(sql)
    known = set(columns)
    parts = []
    for assignment in _split_args(sql[m.end():stop]):
        target, eq, expr = assignment.partition("=")
        expr = _BARE_NAME.sub(lambda n: f"{table}.{n.group(1)}" if n.group(1).lower() in known else n.group(1), expr)
        parts.append(f"{target}{eq}{expr}")
    return sql[:m.end()] + ",".join(parts) + sql[stop:]


def _add_conflict_clause(sql: str, clause: str) -> str:
    m = _RETURNING.search(sql)
    if m is not None:
        return f"{sql[:m.start()].rstrip()} {clause} {sql[m.start():]}"
    return f"{sql.rstrip().rstrip(';')} {clause}"


def _rewrite_insert(sql: str, catalog: Catalog, with_id: bool) -> tuple[str, bool]:
    m = _INSERT.match(sql)
    if m is None:
        return sql, False
    verb, table = (m.group(1) or "").upper(), m.group(2).lower()
    columns = (tuple(c.strip().lower() for c in m.group(4).split(",")) if m.group(3)
               else catalog.columns.get(table, ()))
    sql = f"INSERT INTO {m.group(2)}{m.group(3) or ''} {sql[m.end():].lstrip()}"
    if verb == "IGNORE":
        sql = _add_conflict_clause(sql, "ON CONFLICT DO NOTHING")
    elif verb == "REPLACE":
        target = _upsert_target(table, columns, catalog)
        sets = ", ".join(f"{c}=excluded.{c}" for c in columns if c not in target)
        sql = _add_conflict_clause(sql, f"ON CONFLICT ({', '.join(target)}) " + (
            f"DO UPDATE SET {sets}" if sets else "DO NOTHING"))
    elif (c := _CONFLICT_NO_TARGET.search(sql)) is not None:
        target = _upsert_target(table, columns, catalog)
        sql = f"{sql[:c.start()]}ON CONFLICT ({', '.join(target)}) DO UPDATE{sql[c.end():]}"
    sql = _qualify_set(sql, table, catalog.columns.get(table, ()))
    returns_id = with_id and table in catalog.identity and _RETURNING.search(sql) is None
    return (f"{sql.rstrip().rstrip(';')} RETURNING id", True) if returns_id else (sql, False)


def translate(sql: str, catalog: Catalog, with_id: bool = True) -> tuple[str, bool]:
    """SQLite-dialect *sql* with ``?`` parameters → (PostgreSQL statement with ``%s``, returns the new id).

    String literals and quoted names are left as they are (apart from ``%`` → ``%%``, which psycopg needs).
    """
    strings: list[str] = []

    def mask(m: re.Match[str]) -> str:
        strings.append(m.group(0))
        return f"\x00{len(strings) - 1}\x00"

    masked = _STRING.sub(mask, sql)
    for pattern, replacement in _SIMPLE:
        masked = pattern.sub(replacement, masked)
    masked = _rewrite_functions(masked, strings)
    masked, returns_id = _rewrite_insert(masked, catalog, with_id)
    masked = masked.replace("%", "%%").replace("?", "%s")
    return _MASK.sub(lambda m: strings[int(m.group(1))].replace("%", "%%"), masked), returns_id
