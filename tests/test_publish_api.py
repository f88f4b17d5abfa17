"""The publish API of Alga's CLI (standalone/publish.py), driven with the exact requests the real
``alga extension publish|install|uninstall`` sends (recorded: /work/scratch/notes/cli-recording.md).

The CLI itself is built from Alga's sources, which CI does not have, so these tests replay its
sequence: the same paths, query strings, headers (Node's fetch adds its own) and bodies, with the
archive laid out as the CLI packs it (system tar: directory entries, ``dist/main.wasm`` twice). The
CLI's reading of an error answer (``readErrorPayload``) is reproduced in :func:`cli_message` to
check it prints what it prints against Alga.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import zstandard
from helpers import ROOT

from app import service_of as svc
from standalone.publish import newest_match

API_KEY = "test-api-key-123"
TENANT = "11111111-2222-4333-8444-555555555555"
# Every request of the CLI carries these (Node's fetch adds the last six).
NODE_HEADERS = {"connection": "keep-alive", "x-api-key": API_KEY, "x-tenant-id": TENANT, "accept": "*/*",
                "accept-language": "*", "sec-fetch-mode": "cors", "user-agent": "node",
                "accept-encoding": "gzip, deflate"}
ADMIN = {"x-alga-admin": "true"}  # upload-proxy and finalize only
ENDPOINTS = [{"method": "POST", "path": "/echo", "handler": "dist/main"},
             {"method": "GET", "path": "/status", "handler": "dist/main"}]


def manifest_text(name="com.example.recorder-demo", version="1.0.0", **fields) -> str:
    doc = {"name": name, "publisher": "Example Co", "version": version, "runtime": "wasm-js@1",
           "capabilities": ["cap:context.read", "cap:log.emit", "cap:storage.kv"],
           "ui": {"type": "iframe", "entry": "ui/index.html", "hooks": {"appMenu": {"label": "Recorder Demo"}}},
           "api": {"endpoints": ENDPOINTS}, **fields}
    return json.dumps({k: v for k, v in doc.items() if v is not None}, indent=2) + "\n"


def cli_archive(manifest: str, wasm: bytes | None, ui: bytes = b"<h1>hi</h1>") -> bytes:
    """The archive `alga extension publish` packs: `tar -cf - <names> | zstd -19` of its staging folder."""
    files = {"manifest.json": manifest.encode(), "ui/index.html": ui, "ui/main.js": b"console.log(1)\n"}
    if wasm is not None:
        files.update({"artifacts/component/component.wasm": wasm, "dist/main.wasm": wasm})
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        dirs = sorted({name.rsplit("/", i)[0] + "/" for name in files for i in range(1, name.count("/") + 1)})
        for name in sorted(dirs + list(files)):
            info = tarfile.TarInfo(name)
            info.mtime, info.uname, info.gname = int(time.time()), "root", "root"
            if name.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(files[name]), 0o644
                tar.addfile(info, io.BytesIO(files[name]))
    return zstandard.ZstdCompressor(level=19).compress(raw.getvalue())


def cli_message(payload: dict) -> str:
    """What the CLI prints after `Finalize failed (<status>): ` (sdk/alga-client-sdk publish.ts)."""
    error = payload.get("error")
    message = (error.get("message") if isinstance(error, dict) else None) or payload.get("message") or (
        error if isinstance(error, str) else None)
    code = (error.get("code") if isinstance(error, dict) else None) or payload.get("code")
    return f"{message} [{code}]" if code else message


class AlgaCli:
    """The CLI's requests, one method per command, against a Flask test client."""

    def __init__(self, client, **headers):
        self.client, self.headers = client, {**NODE_HEADERS, **headers}

    def upload(self, archive: bytes, declared: str | None = None, size: int | None = None, **headers):
        size = len(archive) if size is None else size
        declared = hashlib.sha256(archive).hexdigest() if declared is None else declared
        return self.client.post(f"/api/ext-bundles/upload-proxy?filename=bundle.tar.zst&size={size}"
                                f"&declaredHash={declared}", data=archive,
                                headers={**self.headers, **ADMIN, "content-type": "application/octet-stream",
                                         **headers})

    def finalize(self, body: dict | bytes):
        data = body if isinstance(body, bytes) else json.dumps(body)
        return self.client.post("/api/ext-bundles/finalize", data=data,
                                headers={**self.headers, **ADMIN, "content-type": "application/json"})

    def install(self, registry_id: str, version: str):
        return self.post("/api/v1/extensions/install", {"registryId": registry_id, "version": version})

    def uninstall(self, registry_id: str):
        return self.post("/api/v1/extensions/uninstall", {"registryId": registry_id})

    def post(self, path: str, body: dict):
        return self.client.post(path, data=json.dumps(body), headers={**self.headers,
                                                                      "content-type": "application/json"})

    def publish(self, manifest: str, archive: bytes, install: bool = True) -> list:
        """`alga extension publish DIR`: upload, finalize, then install with the manifest's version as written."""
        upload = self.upload(archive)
        answers = [upload]
        if upload.status_code != 200:
            return answers
        declared = hashlib.sha256(archive).hexdigest()
        answers.append(self.finalize({"key": upload.get_json()["upload"]["key"], "declaredHash": declared,
                                      "size": len(archive), "manifestJson": manifest}))
        if install and answers[-1].status_code == 200:
            registry_id = answers[-1].get_json()["extension"]["id"]
            answers.append(self.install(registry_id, json.loads(manifest)["version"]))
        return answers


@pytest.fixture
def app(make_app):
    app = make_app(publish_api_key=API_KEY)
    svc(app).standalone.registry.create_tenant(TENANT, "CLI tenant")
    return app


@pytest.fixture
def cli(app):
    return AlgaCli(app.test_client())


def test_publish_install_call_uninstall_as_the_cli_does(app, cli, mini_wasm, tmp_path):
    manifest = manifest_text()
    archive = cli_archive(manifest, mini_wasm)
    upload, final, install = cli.publish(manifest, archive)
    hex_hash = hashlib.sha256(archive).hexdigest()

    assert upload.status_code == 200
    key = upload.get_json()["upload"]["key"]
    assert upload.get_json() == {"upload": {"key": key, "strategy": "staging"}, "filename": "bundle.tar.zst",
                                 "size": len(archive), "declaredHash": hex_hash}
    assert key.startswith("sha256/_staging/") and key.endswith("/bundle.tar.zst")

    assert final.status_code == 200, final.get_json()
    body = final.get_json()
    registry_id = body["extension"]["id"]
    assert body["extension"] == {"id": registry_id, "name": "com.example.recorder-demo", "publisher": "Example Co"}
    assert body["version"]["version"] == "1.0.0" and body["contentHash"] == hex_hash  # bare hex, as Alga
    assert body["canonicalKey"] == f"tenants/{TENANT}/extensions/{registry_id}/sha256/{hex_hash}/bundle.tar.zst"
    store = Path(svc(app).settings.bundles.bundle_store_base)
    assert (store / body["canonicalKey"]).read_bytes() == archive

    assert install.status_code == 202, install.get_json()
    data = install.get_json()["data"]
    installed = svc(app).standalone.registry.find(TENANT, registry_id)
    assert data == {"registryId": registry_id, "version": "1.0.0", "installId": installed.id, "success": True,
                    "message": "Extension installed"}
    assert installed.version_id == body["version"]["id"] and installed.content_hash == f"sha256:{hex_hash}"
    assert installed.granted_caps == ["cap:context.read", "cap:log.emit", "cap:storage.kv"]

    client = app.test_client()
    r = client.post(f"/api/ext/{registry_id}/echo", data=b"ping", headers={"x-alga-tenant": TENANT})
    assert (r.status_code, r.data) == (200, b"ping")

    assert cli.install(registry_id, "1.0.0").get_json()["data"]["installId"] == installed.id  # an upsert
    r = cli.uninstall(registry_id)
    assert (r.status_code, r.get_json()) == (200, {"data": {"registryId": registry_id, "success": True,
                                                            "message": "Uninstalled"}})
    assert client.post(f"/api/ext/{registry_id}/echo", data=b"x", headers={"x-alga-tenant": TENANT}).status_code == 404
    assert cli.uninstall(registry_id).status_code == 200  # nothing installed is a success too, as in Alga


def test_publishing_a_version_again_is_a_conflict_the_cli_reports_as_against_alga(cli, mini_wasm):
    manifest = manifest_text()
    assert [r.status_code for r in cli.publish(manifest, cli_archive(manifest, mini_wasm), install=False)] == [200, 200]
    upload, final = cli.publish(manifest, cli_archive(manifest, mini_wasm, ui=b"<h1>changed</h1>"))
    assert final.status_code == 409
    assert cli_message(final.get_json()) == ('Version "1.0.0" already exists for this extension. Publish a new '
                                             'version and try again. [EXTENSION_VERSION_ALREADY_EXISTS]')
    assert final.get_json()["error"] == "extension_version_already_exists" and final.get_json()["success"] is False


def test_install_of_an_unknown_version_or_extension(cli, mini_wasm):
    manifest = manifest_text()
    final = cli.publish(manifest, cli_archive(manifest, mini_wasm), install=False)[1]
    registry_id = final.get_json()["extension"]["id"]
    r = cli.install(registry_id, "9.9.9")
    assert r.status_code == 404 and r.get_json()["code"] == "VERSION_NOT_FOUND"
    assert "published: 1.0.0" in r.get_json()["message"]
    r = cli.install("00000000-0000-4000-8000-000000000000", "1.0.0")
    assert r.status_code == 404 and r.get_json()["code"] == "EXTENSION_NOT_FOUND"
    r = cli.post("/api/v1/extensions/install", {"registryId": registry_id})
    assert r.status_code == 400 and r.get_json()["details"][0]["path"] == ["version"]


def test_the_cli_installs_X_Y_star_after_a_wildcard_publish():
    published = ["0.3.9", "0.4.0", "0.4.10", "0.4.9", "0.4.11-beta", "1.4.12"]
    assert newest_match("0.4.*", published) == "0.4.10"
    assert newest_match(" 0.5.* ", published) is None and newest_match("0.4.1", published) is None


def test_an_invalid_manifest_lists_every_issue(cli):
    bad = json.dumps({"name": "com.example.recorder-bad", "description": "unknown top-level keys are rejected",
                      "version": "1.0", "runtime": "ui-only", "ui": {"type": "iframe", "entry": "ui/index.html"}})
    upload, final = cli.publish(bad, cli_archive(bad, None))
    assert final.status_code == 400 and cli_message(final.get_json()) == "Invalid manifest [INVALID_MANIFEST]"
    paths = [issue["path"] for issue in final.get_json()["details"]["issues"]]
    assert "description" in paths and "version" in paths
    upload, final = cli.publish("{not json", cli_archive(manifest_text(), None))
    assert final.get_json()["details"]["issues"][0]["path"] == "$"


def test_finalize_reads_the_archives_manifest_without_manifest_json(cli, mini_wasm):
    manifest = manifest_text(name="com.example.no-manifest-json")
    archive = cli_archive(manifest, mini_wasm)
    key = cli.upload(archive).get_json()["upload"]["key"]
    r = cli.finalize({"key": key, "size": len(archive)})
    assert r.status_code == 200 and r.get_json()["extension"]["name"] == "com.example.no-manifest-json"
    r = cli.finalize({"key": key})  # a finalized upload is gone
    assert r.status_code == 400 and r.get_json()["code"] == "STAGING_NOT_FOUND"


@pytest.mark.parametrize("body,code,text", [
    (b"{nope", "BAD_REQUEST", "Invalid JSON body"),
    (b"[1]", "BAD_REQUEST", "Body must be a JSON object"),
    ({"size": 1}, "BAD_REQUEST", "key is required"),
    ({"key": "tenants/x/bundle.tar.zst"}, "BAD_REQUEST", 'key must start with "sha256/"'),
    ({"key": "sha256/_staging/../../x/bundle.tar.zst"}, "BAD_REQUEST", "invalid staging key"),
    ({"key": "sha256/_staging/6f1c9a57-5d2b-4c1e-9d2e-0d7a3f1b2c3d/bundle.tar.zst"}, "STAGING_NOT_FOUND", ""),
    ({"key": "sha256/x", "size": 0}, "BAD_REQUEST", "size must be a positive number"),
    ({"key": "sha256/x", "declaredHash": "ABC"}, "BAD_REQUEST", "declaredHash must be 64-char"),
])
def test_finalize_refusals(cli, body, code, text):
    r = cli.finalize(body)
    assert r.status_code == 400 and r.get_json()["code"] == code and text in r.get_json()["message"]


def test_finalize_checks_the_declared_hash_size_and_archive(cli, mini_wasm):
    archive = cli_archive(manifest_text(), mini_wasm)
    key = cli.upload(archive).get_json()["upload"]["key"]
    r = cli.finalize({"key": key, "declaredHash": "0" * 64, "manifestJson": manifest_text()})
    assert r.status_code == 400 and r.get_json()["code"] == "HASH_MISMATCH"
    assert r.get_json()["details"] == {"declared": "0" * 64, "computed": hashlib.sha256(archive).hexdigest()}
    r = cli.finalize({"key": key, "size": len(archive) + 1, "manifestJson": manifest_text()})
    assert r.status_code == 400 and r.get_json()["code"] == "SIZE_MISMATCH"
    no_wasm = cli_archive(manifest_text(), None)
    upload, final = cli.publish(manifest_text(), no_wasm)
    assert final.status_code == 400 and "no dist/main.wasm" in final.get_json()["message"]


def test_uploads_larger_than_the_execute_body_cap_and_garbage_archives(cli):
    garbage = bytes(range(256)) * (15 * 4096)  # 15 MiB: above EXT_MAX_REQUEST_BYTES (14 MiB)
    upload, final = cli.publish(manifest_text(), garbage)
    assert upload.status_code == 200
    assert final.status_code == 400 and final.get_json()["code"] == "INVALID_BUNDLE"
    assert "can not be unpacked" in final.get_json()["message"]


@pytest.mark.parametrize("query,headers,text", [
    ("size=3", {}, "filename is required"),
    ("filename=b", {}, "size is required"),
    ("filename=b&size=-1", {}, "size must be a positive number"),
    ("filename=b&size=x", {}, "size must be a positive number"),
    ("filename=b&size=209715201", {}, "size exceeds maximum of 209715200 bytes"),
    ("filename=b&size=3&declaredHash=", {}, "declaredHash must be 64-char lowercase hex sha256"),
    ("filename=b&size=4", {}, "content-length header does not match size param"),
])
def test_upload_refusals(cli, query, headers, text):
    r = cli.client.post(f"/api/ext-bundles/upload-proxy?{query}", data=b"abc", headers={**cli.headers, **headers})
    assert r.status_code == 400 and r.get_json()["message"] == text and r.get_json()["code"] == "BAD_REQUEST"
    r = cli.client.post("/api/ext-bundles/upload-proxy?filename=b&size=3", data=b"", headers=cli.headers)
    assert r.status_code == 400 and r.get_json()["message"] == "Missing request body"


def test_the_api_key_and_the_tenant(make_app, app, mini_wasm):
    off = AlgaCli(make_app().test_client())
    r = off.install("x", "1.0.0")
    assert r.status_code == 403 and "EXT_PUBLISH_API_KEY" in r.get_json()["message"]
    for headers, status in (({"x-api-key": ""}, 401), ({"x-api-key": "wrong"}, 401),
                            ({"x-tenant-id": "nobody"}, 404)):
        r = AlgaCli(app.test_client(), **headers).upload(b"abc")
        assert r.status_code == status and "Traceback" not in r.get_data(as_text=True)
    assert "flask ext tenants create nobody" in r.get_json()["message"]


def test_installing_for_another_tenant_copies_the_bundle_to_its_key(app, cli, mini_wasm):
    manifest = manifest_text(name="com.example.two-tenants")
    final = cli.publish(manifest, cli_archive(manifest, mini_wasm), install=False)[1].get_json()
    default = svc(app).settings.registry.default_tenant
    other = AlgaCli(app.test_client(), **{"x-tenant-id": default})
    assert other.install(final["extension"]["id"], "1.0.0").status_code == 202
    store = Path(svc(app).settings.bundles.bundle_store_base)
    key = final["canonicalKey"].replace(TENANT, default)
    assert (store / key).read_bytes() == (store / final["canonicalKey"]).read_bytes()
    r = app.test_client().post(f"/api/ext/{final['extension']['id']}/echo", data=b"other")
    assert (r.status_code, r.data) == (200, b"other")


@pytest.mark.slow
def test_the_sequence_over_http_under_gunicorn(tmp_path, shared_dirs, mini_wasm):
    """Gunicorn ends the request stream itself (wsgi.input_terminated), unlike the test client; a 4 MiB
    UI file that does not compress makes the upload span many reads."""
    import requests
    from helpers import free_port, start_gunicorn, stop_process
    from test_cli import flask, flask_env

    env = {**flask_env(tmp_path, shared_dirs), "PORT": str(free_port()), "EXT_PUBLISH_API_KEY": API_KEY}
    subprocess.run(flask("tenants", "create", TENANT), cwd=ROOT, env=env, check=True, capture_output=True)
    proc, base = start_gunicorn(env, tmp_path / "gunicorn.log")
    try:
        manifest = manifest_text(name="com.example.over-http")
        archive = cli_archive(manifest, mini_wasm, ui=os.urandom(4 << 20))
        hex_hash = hashlib.sha256(archive).hexdigest()
        headers = {**NODE_HEADERS, **ADMIN}
        upload = requests.post(f"{base}/api/ext-bundles/upload-proxy?filename=bundle.tar.zst&size={len(archive)}"
                               f"&declaredHash={hex_hash}", data=archive,
                               headers={**headers, "content-type": "application/octet-stream"}, timeout=60)
        assert upload.status_code == 200, upload.text
        final = requests.post(f"{base}/api/ext-bundles/finalize", timeout=60, json={
            "key": upload.json()["upload"]["key"], "declaredHash": hex_hash, "size": len(archive),
            "manifestJson": manifest}, headers=headers)
        assert final.status_code == 200, final.text
        registry_id = final.json()["extension"]["id"]
        install = requests.post(f"{base}/api/v1/extensions/install", json={"registryId": registry_id,
                                                                             "version": "1.0.0"},
                                headers=NODE_HEADERS, timeout=300)  # compiles the component before answering
        assert install.status_code == 202, install.text
        r = requests.post(f"{base}/api/ext/{registry_id}/echo", data=b"over http", headers={"x-alga-tenant": TENANT},
                          timeout=60)
        assert (r.status_code, r.content) == (200, b"over http")
        longer = requests.post(f"{base}/api/ext-bundles/upload-proxy?filename=b&size=3", data=iter([b"abcd"]),
                               headers=NODE_HEADERS, timeout=60)  # chunked: no content-length to compare
        assert longer.status_code == 400 and "but size is 3" in longer.json()["message"]
    finally:
        stop_process(proc)


def test_a_wildcard_publish_takes_the_next_free_patch_and_the_cli_installs_it(cli, mini_wasm):
    """Alga's finalize resolves X.Y.*; the CLI then installs with the literal X.Y.* it read from the manifest."""
    manifest = manifest_text(version="0.4.*")
    versions = []
    for ui in (b"<h1>one</h1>", b"<h1>two</h1>"):
        upload, final, install = cli.publish(manifest, cli_archive(manifest, mini_wasm, ui=ui))
        assert final.status_code == 200 and install.status_code == 202, (final.get_json(), install.get_json())
        versions.append(final.get_json()["version"]["version"])
        assert install.get_json()["data"]["version"] == versions[-1]
    assert versions == ["0.4.0", "0.4.1"]
