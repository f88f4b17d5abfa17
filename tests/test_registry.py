"""storage/registry.py: deterministic ids, idempotent upserts, the active bundle, lookups, validation."""
import json
import threading
import uuid

import pytest

from standalone.manifest import validate
from storage.registry.installs import DEFAULT_TENANT_NAME, Registry, RegistryError

TENANT = "tenant-a"
NS = uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
HASH_A, HASH_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def manifest(**change):
    doc = {"name": "com.example.demo", "publisher": "Example", "version": "1.0.0", "runtime": "wasm-js@1",
           "capabilities": ["cap:storage.kv"], "ui": {"type": "iframe", "entry": "ui/index.html"},
           "api": {"endpoints": [{"method": "GET", "path": "/hello", "handler": "dist/main"}]}}
    return validate({**doc, **change})


@pytest.fixture
def registry(tmp_path):
    r = Registry(tmp_path / "registry.db", "default-tenant")
    r.create_tenant(TENANT, "Tenant A")
    return r


def upsert(registry, m=None, content_hash=HASH_A, tenant=TENANT):
    return registry.upsert(tenant, m or manifest(), content_hash, 123, "file:///x", ["cap:storage.kv"])


def test_default_tenant_exists(registry):
    assert registry.tenant("default-tenant").name == DEFAULT_TENANT_NAME
    assert [t.id for t in registry.tenants()] == ["default-tenant", TENANT]
    with pytest.raises(RegistryError, match="already exists"):
        registry.create_tenant(TENANT, "again")
    with pytest.raises(RegistryError, match="invalid tenant id"):
        registry.create_tenant("a/b", "slash")


def test_ids_are_those_of_the_reference_install_script(registry):
    first = upsert(registry)
    i = first.install
    assert first.changed == ("registry", "version", "bundle", "install")
    assert i.registry_id == str(uuid.uuid5(NS, "Example/com.example.demo"))
    assert i.version_id == str(uuid.uuid5(NS, "Example/com.example.demo/1.0.0"))
    assert i.id == str(uuid.uuid5(NS, f"{TENANT}/Example/com.example.demo"))
    assert registry.bundles(i.version_id)[0].id == str(uuid.uuid5(NS, f"Example/com.example.demo/1.0.0/{HASH_A}"))
    assert (i.content_hash, i.enabled, i.granted_caps, i.capabilities) == (HASH_A, True, ["cap:storage.kv"],
                                                                           ["cap:storage.kv"])
    assert i.api_endpoints == [{"method": "GET", "path": "/hello", "handler": "dist/main"}]
    assert i.ui == {"type": "iframe", "entry": "ui/index.html"} and i.hash_hex == "a" * 64


def test_unchanged_upsert_writes_nothing(registry):
    before = upsert(registry).install
    again = upsert(registry)
    assert again.changed == () and again.install == before


def test_new_content_for_the_same_version_is_active_at_once(registry):
    upsert(registry)
    assert upsert(registry, content_hash=HASH_B).changed == ("bundle",)
    assert registry.find(TENANT, "com.example.demo").content_hash == HASH_B
    back = upsert(registry, content_hash=HASH_A)  # the older bundle row becomes the newest again
    assert back.changed == ("bundle",) and back.install.content_hash == HASH_A
    assert [b.content_hash for b in registry.bundles(back.install.version_id)] == [HASH_A, HASH_B]


def test_changed_manifest_updates_the_version_and_a_new_version_moves_the_install(registry):
    upsert(registry)
    changed = upsert(registry, manifest(api={"endpoints": []}))
    assert changed.changed == ("version",) and changed.install.api_endpoints == []
    newer = upsert(registry, manifest(version="1.1.0"), HASH_B)
    assert newer.changed == ("version", "bundle", "install")
    assert (newer.install.version, newer.install.content_hash) == ("1.1.0", HASH_B)


def test_find_by_any_reference_and_ambiguity(registry):
    i = upsert(registry).install
    for ref in (i.id, i.registry_id, "COM.example.demo", "example.com.example.demo"):
        assert registry.find(TENANT, ref).id == i.id
    assert registry.find("default-tenant", "com.example.demo") is None
    assert registry.find(TENANT, "other") is None
    upsert(registry, manifest(publisher="Other"))
    with pytest.raises(RegistryError, match="names several extensions"):
        registry.find(TENANT, "com.example.demo")


def test_enable_disable_and_listing(registry):
    i = upsert(registry).install
    registry.set_enabled(i.id, False)
    off = registry.install_by_id(i.id)
    assert (off.is_enabled, off.status, off.enabled) == (False, "disabled", False)
    assert registry.installs(TENANT, enabled_only=True) == []
    assert [x.id for x in registry.installs(TENANT)] == [i.id]
    assert upsert(registry).changed == ("install",)  # installing again enables it, as the reference script
    assert registry.installs(TENANT, enabled_only=True)[0].enabled


def test_validate_ui(registry):
    i = upsert(registry).install
    assert registry.validate_ui(TENANT, i.registry_id, HASH_A)
    assert registry.validate_ui(TENANT, i.registry_id, ("A" * 64))
    assert not registry.validate_ui("default-tenant", i.registry_id, HASH_A)
    assert not registry.validate_ui(TENANT, "com.example.demo", HASH_A)  # the URL carries the registry id
    upsert(registry, content_hash=HASH_B)
    assert not registry.validate_ui(TENANT, i.registry_id, HASH_A)
    registry.set_enabled(i.id, False)
    assert not registry.validate_ui(TENANT, i.registry_id, HASH_B)


def test_config_is_read_as_strings(registry):
    i = upsert(registry).install
    assert registry.update_config(i, {"a": "1", "b": "2"}) == {"a": "1", "b": "2"}
    assert registry.update_config(i, {}, removed=("b",)) == {"a": "1"}
    assert registry.install_by_id(i.id).config == {"a": "1"}
    registry.db.execute("UPDATE tenant_extension_install_config SET config = ? WHERE install_id = ?",
                        [json.dumps({"n": 5, "o": {"x": True}}), i.id])
    assert registry.install_by_id(i.id).config == {"n": "5", "o": '{"x": true}'}


def test_uninstall_keeps_data_unless_purged(registry):
    i = upsert(registry).install
    other = upsert(registry, tenant="default-tenant").install
    db = registry.db
    for install in (i, other):
        db.execute("INSERT INTO ext_storage (tenant_id, install_id, namespace, key, value, revision) "
                   "VALUES (?, ?, 'ns', 'k', x'00', 1)", [install.tenant_id, install.id])
    registry.uninstall(i)
    assert registry.find(TENANT, i.registry_id) is None
    assert db.execute("SELECT count(*) FROM ext_storage").fetchone()[0] == 2
    assert upsert(registry).install.id == i.id  # same id again: its storage is back
    registry.uninstall(registry.install_by_id(i.id), purge=True)
    assert db.execute("SELECT tenant_id FROM ext_storage").fetchall() == [("default-tenant",)]
    assert db.execute("SELECT count(*) FROM extension_registry").fetchone()[0] == 1  # still installed elsewhere
    registry.uninstall(other, purge=True)
    assert db.execute("SELECT count(*) FROM extension_registry").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM extension_bundle").fetchone()[0] == 0


def test_unknown_tenant_is_refused(registry):
    with pytest.raises(RegistryError, match="unknown tenant"):
        upsert(registry, tenant="nobody")


def test_concurrent_upserts_from_separate_connections(tmp_path):
    Registry(tmp_path / "r.db", "t").tenants()
    errors, results = [], []

    def run(n):
        try:
            r = Registry(tmp_path / "r.db", "t")  # each thread has its own connection
            results.append(r.upsert("t", manifest(name=f"ext{n % 3}"), f"sha256:{n:064x}", 1, "u", []))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    installs = Registry(tmp_path / "r.db", "t").installs("t")
    assert sorted(i.name for i in installs) == ["ext0", "ext1", "ext2"]


def test_connections_per_thread_and_process_migrations_once_per_path(tmp_path, monkeypatch):
    from storage.registry import db as storage_db

    applied = []
    real_migrate = storage_db.migrate
    monkeypatch.setattr(storage_db, "migrate", lambda db: applied.append(1) or real_migrate(db))
    path = tmp_path / "r.db"
    first = storage_db.open_db(path)
    assert storage_db.open_db(path) is first
    other = []
    t = threading.Thread(target=lambda: other.append(storage_db.open_db(path)))
    t.start()
    t.join()
    assert other[0] is not first
    monkeypatch.setattr(storage_db.os, "getpid", lambda: -1)  # as in a forked child
    assert storage_db.open_db(path) is not first
    assert applied == [1]
