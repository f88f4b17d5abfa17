"""The registry's schema, as an ordered sqlite-utils ``Migrations`` set.

Each step runs one ``NNNN_name.sql`` file of this folder; an applied step is never
edited, changes are new files (and a new function below). Databases made before this
set existed recorded their steps in ``schema_version``: those steps are recorded here
without running again.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

HERE = Path(__file__).parent
MIGRATIONS = Migrations("alga-runner")


def _step(filename: str):
    version = int(filename[:4])

    def run(db: sqlite_utils.Database) -> None:
        if version in _legacy_versions(db):
            return
        for statement in _statements((HERE / filename).read_text()):
            db.execute(statement)

    run.__name__ = Path(filename).stem
    MIGRATIONS(name=run.__name__)(run)


def _legacy_versions(db: sqlite_utils.Database) -> set[int]:
    if not db["schema_version"].exists():
        return set()
    return {row["version"] for row in db.query("SELECT version FROM schema_version")}


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


for _file in ("0001_registry.sql", "0002_storage.sql", "0003_schedules_and_seed.sql", "0004_invoices.sql"):
    _step(_file)
