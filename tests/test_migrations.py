"""Migrations: applied in order, recorded, and a second run changes nothing."""
import json
import sqlite3

import migrations
from storage.db import connect


def schema(conn) -> list[tuple]:
    return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


def test_running_twice_is_a_no_op(tmp_path):
    conn = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    first = migrations.apply(conn)
    assert first == [stem for _, stem, _ in migrations.available()]
    before = schema(conn), conn.execute("SELECT * FROM schema_version").fetchall()
    assert migrations.apply(conn) == []
    assert (schema(conn), conn.execute("SELECT * FROM schema_version").fetchall()) == before
    versions = [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == sorted(v for v, _, _ in migrations.available())


def test_reference_tables_exist(tmp_path):
    conn = connect(tmp_path / "r.db")
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"tenants", "extension_registry", "extension_version", "extension_bundle", "tenant_extension_install",
            "tenant_extension_install_config", "tenant_extension_install_secrets", "ext_storage", "ext_schedule",
            "seed_client", "seed_service", "schema_version"} <= tables
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrate_command(make_app, tmp_path):
    app = make_app(registry_db=str(tmp_path / "fresh" / "r.db"))
    runner = app.test_cli_runner()
    first = runner.invoke(args=["ext", "migrate", "--json"])
    assert first.exit_code == 0, first.output
    doc = json.loads(first.output)
    assert doc["applied"] == [stem for _, stem, _ in migrations.available()] and doc["version"] >= 3
    again = runner.invoke(args=["ext", "migrate"])
    assert again.exit_code == 0 and "is up to date" in again.output
