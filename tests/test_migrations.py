"""Migrations: applied in order, recorded, a second run changes nothing, older databases carry on."""
import json
import sqlite3

import sqlite_utils

import migrations
from storage.registry.db import connect, migrate, open_db

ALL = [m.name for m in migrations.MIGRATIONS.pending(sqlite_utils.Database(memory=True))]


def schema(db) -> list[tuple]:
    return db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


def test_running_twice_is_a_no_op(tmp_path):
    db = connect(tmp_path / "r.db")
    assert migrate(db) == ALL == ["0001_registry", "0002_storage", "0003_schedules_and_seed", "0004_invoices"]
    before = schema(db), list(db["_sqlite_migrations"].rows)
    assert migrate(db) == []
    assert (schema(db), list(db["_sqlite_migrations"].rows)) == before
    assert [m.name for m in migrations.MIGRATIONS.applied(db)] == ALL


def test_reference_tables_exist(tmp_path):
    db = open_db(tmp_path / "r.db")
    assert {"tenants", "extension_registry", "extension_version", "extension_bundle", "tenant_extension_install",
            "tenant_extension_install_config", "tenant_extension_install_secrets", "ext_storage", "ext_schedule",
            "seed_client", "seed_service", "invoice", "invoice_charge", "invoice_number",
            "_sqlite_migrations"} <= set(db.table_names())
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_database_of_the_older_migration_runner_is_taken_over(tmp_path):
    """Made before the sqlite-utils set: its steps are in schema_version and must not run again."""
    db = sqlite_utils.Database(sqlite3.connect(tmp_path / "old.db", isolation_level=None))
    db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    for version, name in enumerate(ALL[:2], start=1):
        for statement in migrations._statements((migrations.HERE / f"{name}.sql").read_text()):
            db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (?, ?)", [version, name])
    db.execute("INSERT INTO tenants (id, name) VALUES ('t', 'kept')")
    assert migrate(db) == ALL  # recorded; only the later steps' SQL runs
    assert [row["name"] for row in db.query("SELECT name FROM tenants")] == ["kept"]
    assert "ext_schedule" in db.table_names()


def test_migrate_command(make_app, tmp_path):
    app = make_app(registry_db=str(tmp_path / "fresh" / "r.db"))
    runner = app.test_cli_runner()
    first = runner.invoke(args=["ext", "migrate", "--json"])
    assert first.exit_code == 0, first.output
    doc = json.loads(first.output)
    assert doc["applied"] == ALL and doc["version"] == len(ALL) >= 3
    again = runner.invoke(args=["ext", "migrate"])
    assert again.exit_code == 0 and "is up to date" in again.output
