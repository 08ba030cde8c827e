"""Ledger schema migrations: one ordered step per version with no gap, a new database at the newest version,
an old one brought up to it, and a database written by a newer AIWS refused with a clear message (untouched)."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from aiws.ledger import Ledger
from aiws.ledger.schema import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew


def test_one_migration_per_version_in_order() -> None:
    assert list(MIGRATIONS) == list(range(2, SCHEMA_VERSION + 1))
    assert all(MIGRATIONS[v] for v in MIGRATIONS)


def test_a_new_ledger_is_at_the_newest_version(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "aiws.db")
    assert ledger.meta_value("schema_version") == str(SCHEMA_VERSION)
    ledger.close()
    assert Ledger(tmp_path / "aiws.db").meta_value("schema_version") == str(SCHEMA_VERSION)  # reopened: unchanged


def _newer(path: Path) -> None:
    con = sqlite3.connect(path)
    con.executescript(f"""
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES('schema_version', '{SCHEMA_VERSION + 1}');
        CREATE TABLE future(x INTEGER);
    """)
    con.commit()
    con.close()


def _tables(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()


def test_a_newer_ledger_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "aiws.db"
    _newer(db)
    with pytest.raises(SchemaTooNew, match=rf"schema version {SCHEMA_VERSION + 1} is newer than this AIWS "
                                           rf"understands \({SCHEMA_VERSION}\)"):
        Ledger(db)
    assert _tables(db) == {"meta", "future"}


def test_the_cli_says_so_and_exits_non_zero(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir()
    _newer(data / "aiws.db")
    cfg = tmp_path / "aiws.toml"
    cfg.write_text(f'[storage]\ndata_dir = "{data}"\n')
    run = subprocess.run([sys.executable, "-m", "aiws.cli", "audit", "verify", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert f"is newer than this AIWS understands ({SCHEMA_VERSION})" in run.stdout + run.stderr
    assert "Traceback" not in run.stderr
