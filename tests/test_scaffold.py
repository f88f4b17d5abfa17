"""`flask ext new`: the folders it writes build and install with no edits.

The slow test runs the component template's own `npm run build` (pinned jco, the real SDK from npm),
installs the result and calls it with `flask ext call`. Its node_modules come from `npm ci` of the
template's package.json and lock, once per lock: kept in var/npm/<hash>/ and linked into each new
folder, as `npm ci` there would lay them out.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from helpers import ROOT

from app import service_of as svc
from standalone import scaffold
from standalone.manifest import load as load_manifest


@pytest.fixture
def cli(make_app):
    app = make_app()
    runner = app.test_cli_runner()

    def invoke(*args, ok=True):
        result = runner.invoke(args=["ext", *args])
        assert (result.exit_code == 0) == ok, result.output
        return result

    invoke.app = app
    return invoke


def test_new_component_folder(cli, tmp_path):
    folder = tmp_path / "com.acme.ticket-sync"
    out = cli("new", "com.acme.ticket-sync", "--dir", str(folder), "--publisher", 'Acme "Tools"').output
    assert f"created the component extension com.acme.ticket-sync in {folder}" in out
    assert f"ext dev {folder}" in out and "ext call com.acme.ticket-sync /hello" in out
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == [".gitignore", "README.md", "manifest.json", "package-lock.json", "package.json",
                     "rolldown.config.mjs", "src/handler.ts", "src/host.ts", "tsconfig.json", "ui/app.js",
                     "ui/bridge.js", "ui/index.html", "ui/style.css", "wit/extension-runner.wit"]
    m = load_manifest(folder)
    assert (m.name, m.publisher, m.version, m.ui["hooks"]["appMenu"]["label"]) == (
        "com.acme.ticket-sync", 'Acme "Tools"', "0.1.0", "Ticket Sync")
    assert [(e.method, e.path) for e in m.endpoints] == [("GET", "/hello"), ("POST", "/echo")]
    assert (folder / "wit" / "extension-runner.wit").read_bytes() == scaffold.WIT.read_bytes()
    assert not [f for f in files if "__" in (folder / f).read_text()]  # every placeholder is filled


def test_the_component_template_pins_its_toolchain(tmp_path):
    made = scaffold.create(tmp_path / "x", "x")
    package = json.loads((made.folder / "package.json").read_text())
    lock = json.loads((made.folder / "package-lock.json").read_text())
    wanted = {**package["dependencies"], **package["devDependencies"]}
    assert {"@alga-psa/extension-runtime", "@bytecodealliance/jco", "@bytecodealliance/componentize-js",
            "typescript"} <= set(wanted)
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in wanted.values()), wanted  # exact versions only
    for name, version in wanted.items():  # the lock npm ci installs from agrees with package.json
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert lock["name"] == package["name"] == "x" and lock["packages"][""]["name"] == "x"
    assert "build" in package["scripts"] and "componentize" in package["scripts"]["build"]


def test_new_ui_folder_installs_as_it_is(cli, tmp_path):
    folder = tmp_path / "dash"
    cli("new", "com.acme.dash", "--template", "ui", "--dir", str(folder), "--label", "Dashboard")
    assert not (folder / "package.json").exists() and load_manifest(folder).runtime == "ui-only"
    installed = json.loads(cli("install", str(folder), "--json").stdout)
    page = cli.app.test_client().get(_local(installed["ui_url"]))
    assert page.status_code == 200 and b"<title>Dashboard</title>" in page.data
    assert cli.app.test_client().get(_local(installed["ui_url"]).replace("index.html", "bridge.js")
                                     ).status_code == 200


def test_new_refuses_bad_names_and_used_folders(cli, tmp_path):
    assert "is not an extension name" in cli("new", "../up", ok=False).output
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    assert "is not an empty folder" in cli("new", "x", "--dir", str(used), ok=False).output
    assert (used / "keep.txt").read_text() == "mine"
    assert scaffold.default_label("com.acme.ticket_sync-v2") == "Ticket Sync V2"
    assert scaffold.npm_name("Com.Acme.My Ext!") == "com.acme.my-ext-"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """node_modules as `npm ci` of the component template makes them, once per lock file."""
    assert shutil.which("npm"), "the scaffold build test needs Node.js and npm (see README, Developing an extension)"
    template = scaffold.TEMPLATES / "component"
    package = json.loads((template / "package.json").read_text())
    installs = json.dumps([package.get(k) for k in ("dependencies", "devDependencies", "overrides")])
    digest = hashlib.sha256(installs.encode() + (template / "package-lock.json").read_bytes())  # not the scripts
    target = ROOT / "var" / "npm" / digest.hexdigest()[:16]
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once install once
        if not (target / "node_modules").is_dir():
            work = target.with_name(f"{target.name}.{os.getpid()}.tmp")
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            for name in ("package.json", "package-lock.json"):
                shutil.copyfile(template / name, work / name)
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=work, check=True,
                           capture_output=True, timeout=600)
            shutil.rmtree(target, ignore_errors=True)
            work.rename(target)
    return target / "node_modules"


@pytest.mark.slow
def test_new_build_install_call(cli, tmp_path, node_modules):
    folder = tmp_path / "com.acme.built"
    cli("new", "com.acme.built", "--dir", str(folder))
    (folder / "node_modules").symlink_to(node_modules)
    built = subprocess.run(["npm", "run", "build"], cwd=folder, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert (folder / "dist" / "main.wasm").stat().st_size > 1_000_000

    installed = json.loads(cli("install", str(folder), "--json").stdout)
    assert installed["warnings"] == []  # it compiled
    cli.app.test_client().get("/livez")  # the app serves requests too: `ext call` leaves its pool running
    hello = json.loads(cli("call", "com.acme.built", "/hello", "--json").stdout)
    tenant = svc(cli.app).settings.registry.default_tenant
    assert hello == {"status": 200, "headers": hello["headers"], "body": {
        "message": "Hello from com.acme.built", "tenantId": tenant, "extensionId": installed["registry_id"]}}
    echoed = json.loads(cli("call", "com.acme.built", "/echo", "-X", "POST", "-d", '{"n": 1}', "--json").stdout)
    assert echoed["body"] == {"received": {"n": 1}}
    text = cli("call", "com.acme.built", "/nope")
    assert "HTTP 404" in text.stderr  # not in api.endpoints: the gateway refuses it, as Alga's does
    assert json.loads(text.stdout)["error"] == "endpoint_not_found"


def _local(url: str) -> str:
    """The path and query of a URL the service printed (its host and port depend on where it runs)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path
