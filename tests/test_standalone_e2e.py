"""Standalone mode end to end, in one running app: pack -> install -> /api/ext -> /ext-ui (strict) ->
reinstall a change (served at once, no restart) -> uninstall -> 404; and the samples `make run` installs."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from helpers import ROOT, free_port
from standalone_helpers import write_extension

from app import service_of as svc

pytestmark = pytest.mark.slow


def ui_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_pack_install_call_ui_reinstall_uninstall(make_app, mini_wasm, tmp_path):
    app = make_app(static_strict_validation=True)
    cli, client = app.test_cli_runner(), app.test_client()
    folder = write_extension(tmp_path / "ext", name="com.tests.e2e", wasm=mini_wasm, ui_html="<h1>v1</h1>",
                             endpoints=[{"method": "POST", "path": "/echo", "handler": "dist/main"}])

    packed = cli.invoke(args=["ext", "pack", str(folder)])
    assert packed.exit_code == 0, packed.output
    first = json.loads(cli.invoke(args=["ext", "install", str(folder), "--json"]).stdout)
    assert first["content_hash"] == "sha256:" + packed.stdout.split()[0]  # install uploads what pack builds

    r = client.post("/api/ext/com.tests.e2e/echo", data=b"ping")
    assert (r.status_code, r.data) == (200, b"ping")

    ui = client.get(ui_path(first["ui_url"]))
    assert ui.status_code == 200 and b"<h1>v1</h1>" in ui.data
    # strict validation: another tenant has no such install
    assert client.get(ui_path(first["ui_url"]).replace(first["tenant"], "someone-else")).status_code == 404

    (folder / "ui" / "index.html").write_text("<h1>v2</h1>")
    second = json.loads(cli.invoke(args=["ext", "install", str(folder), "--json"]).stdout)
    assert second["changed"] == ["bundle"] and second["content_hash"] != first["content_hash"]
    ui = client.get(ui_path(second["ui_url"]))
    assert ui.status_code == 200 and b"<h1>v2</h1>" in ui.data
    assert client.post("/api/ext/com.tests.e2e/echo", data=b"again").data == b"again"
    registry = svc(app).standalone.registry
    assert not registry.validate_ui(first["tenant"], first["registry_id"], first["content_hash"])

    assert cli.invoke(args=["ext", "uninstall", "com.tests.e2e"]).exit_code == 0
    r = client.post("/api/ext/com.tests.e2e/echo", data=b"ping")
    assert r.status_code == 404 and r.get_json()["error"] == "extension_not_available"
    assert not registry.validate_ui(second["tenant"], second["registry_id"], second["content_hash"])


def test_the_samples_make_run_installs(make_app):
    app = make_app(static_strict_validation=True)
    result = app.test_cli_runner().invoke(args=["ext", "samples", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["curl"].endswith("/api/ext/com.alga.sample.sdk-handler/hello")
    client = app.test_client()
    hello = client.get(urlsplit(doc["curl"].split()[-1]).path)
    assert hello.status_code == 200 and hello.get_json()["message"] == "Hello from the SDK handler"
    assert client.post("/api/ext/com.alga.sample.sdk-handler/counter").get_json() == {"count": 1}
    assert client.get("/api/ext/com.alga.sample.sdk-handler/counter").get_json() == {"count": 1}
    for install in doc["installs"]:
        page = client.get(ui_path(install["ui_url"]))
        assert page.status_code == 200 and b"<html" in page.data.lower()
    again = json.loads(app.test_cli_runner().invoke(args=["ext", "samples", "--json"]).stdout)
    assert [i["changed"] for i in again["installs"]] == [[], []]  # idempotent


def test_make_run_installs_the_samples_under_gunicorn(tmp_path, shared_dirs):
    """What `make run` does: EXT_INSTALL_SAMPLES=true, two Gunicorn processes sharing one registry."""
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "EXT_INSTALL_SAMPLES": "true", "WEB_CONCURRENCY": "2",
           "EXT_WORKERS": "1", "EXT_REGISTRY_DB": str(tmp_path / "r.db"), "BUNDLE_STORE_BASE": str(tmp_path / "b"),
           "EXT_CACHE_ROOT": str(shared_dirs["cache"]), "EXT_SECRETS_KEY_FILE": str(tmp_path / "key")}
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
                                 "app:create_app()"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "try: curl" not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        text = log.read_text()
        assert "try: curl" in text, text[-3000:]
        curl = next(line for line in text.splitlines() if line.startswith("try: curl")).split()[-1]
        assert curl == f"http://127.0.0.1:{port}/api/ext/com.alga.sample.sdk-handler/hello"
        for _ in range(100):
            try:
                hello = requests.get(curl, timeout=30)
                break
            except requests.RequestException:
                time.sleep(0.1)
        assert hello.status_code == 200 and hello.json()["message"] == "Hello from the SDK handler"
        ui_urls = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("com.alga.sample.")]
        assert len(ui_urls) == 2
        for url in ui_urls:
            assert requests.get(url, timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
