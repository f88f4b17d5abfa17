"""Numbered SQL migrations (``NNNN_name.sql``), applied in order and recorded in
``schema_version``. An applied file is never edited; changes are new files."""
from __future__ import annotations

import sqlite3
from pathlib import Path

HERE = Path(__file__).parent


def available() -> list[tuple[int, str, Path]]:
    steps = []
    for path in sorted(HERE.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        steps.append((int(path.name[:4]), path.stem, path))
    return steps


def applied(conn: sqlite3.Connection) -> set[int]:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                 "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))")
    return {row[0] for row in conn.execute("SELECT version FROM schema_version")}


def apply(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction; returns their names."""
    done = applied(conn)
    ran = []
    for version, name, path in available():
        if version in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            if version in applied(conn):  # another process got there first
                conn.execute("ROLLBACK")
                continue
            for statement in _statements(path.read_text()):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", (version, name))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        ran.append(name)
    return ran


def _statements(sql: str) -> list[str]:
    """Split a migration file into statements (executescript would commit on its own)."""
    statements, current = [], []
    for line in sql.splitlines():
        current.append(line)
        text = "\n".join(current)
        if sqlite3.complete_statement(text):  # comments alone never complete a statement
            statements.append(text)
            current = []
    return statements
