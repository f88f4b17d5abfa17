"""`flask ext ...`: output (text and --json), one-line errors, and commands run as real processes
(two installs at once, `ext dev` reinstalling on a change)."""
import json
import os
import queue
import re
import stat
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import click
import pytest
import requests
import zstandard
from helpers import ROOT, RedisProcess, free_port, needs_redis, start_gunicorn, stop_process
from standalone_helpers import write_extension

from app import service_of as svc
from standalone import build as builds

ENDPOINTS = [{"method": "POST", "path": "/echo", "handler": "dist/main"}]


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args, ok=True, **kw):
        result = runner.invoke(args=["ext", *args], **kw)
        assert (result.exit_code == 0) == ok, result.output
        return result

    return invoke


@pytest.fixture
def mini(tmp_path, mini_wasm):
    return write_extension(tmp_path / "mini", name="com.tests.cli", wasm=mini_wasm, endpoints=ENDPOINTS)


def test_pack_prints_the_hash_and_writes_the_sidecar(cli, mini, tmp_path):
    out = cli("pack", str(mini)).output.strip()
    hex_hash, path = out.split("  ")
    assert Path(path) == mini / "dist" / "bundle.tar.zst" and len(hex_hash) == 64
    assert (mini / "dist" / "bundle.sha256").read_text() == hex_hash + "\n"
    doc = json.loads(cli("pack", str(mini), "-o", str(tmp_path / "b.tar.zst"), "--json").stdout)
    assert doc["content_hash"] == f"sha256:{hex_hash}" and doc["files"] == 3  # same files, same hash


def members(archive: Path) -> list[str]:
    with open(archive, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as plain, \
            tarfile.open(fileobj=plain, mode="r|") as tar:
        return [m.name for m in tar]


@pytest.mark.parametrize("built", ["ui/dist", "dist/ui"])
def test_pack_takes_the_built_ui(cli, tmp_path, built):
    folder = write_extension(tmp_path / "ext", name="x", wasm=None, endpoints=[])
    (folder / built / "assets").mkdir(parents=True)
    (folder / built / "index.html").write_text("<p>built</p>")
    (folder / built / "assets" / "bundle.js").write_text("1")
    (folder / "ui" / "node_modules").mkdir()
    (folder / "ui" / "node_modules" / "dep.js").write_text("2")
    cli("pack", str(folder), "-o", str(tmp_path / "b.tar.zst"))
    assert members(tmp_path / "b.tar.zst") == ["manifest.json", "ui/assets/bundle.js", "ui/index.html"]


def test_pack_keeps_the_ui_folder_when_the_entry_points_into_it(cli, tmp_path):
    folder = write_extension(tmp_path / "ext", name="x", wasm=None, endpoints=[], ui_html=None)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "ui": {"type": "iframe",
                                                                          "entry": "ui/dist/index.html"}}))
    (folder / "ui" / "dist").mkdir(parents=True)
    (folder / "ui" / "dist" / "index.html").write_text("<p>built</p>")
    cli("pack", str(folder), "-o", str(tmp_path / "b.tar.zst"))
    assert members(tmp_path / "b.tar.zst") == ["manifest.json", "ui/dist/index.html"]
    (folder / "ui" / "dist" / "index.html").unlink()
    assert "ui.entry: ui/dist/index.html is not in the bundle" in cli("pack", str(folder), ok=False).output


def test_build_runs_the_extensions_own_build(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\necho \"$@\" > built.txt\nexit ${NPM_EXIT:-0}\n")
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    folder = tmp_path / "ext"
    folder.mkdir()
    assert builds.build(folder) is False  # no package.json
    (folder / "package.json").write_text(json.dumps({"scripts": {"test": "x"}}))
    assert builds.build(folder) is False  # no build script
    (folder / "package.json").write_text(json.dumps({"scripts": {"build": "tsc"}}))
    assert builds.build(folder) is True and (folder / "built.txt").read_text() == "run build\n"
    monkeypatch.setenv("NPM_EXIT", "1")
    with pytest.raises(builds.BuildError, match="npm run build failed") as failed:
        builds.build(folder)
    assert failed.value.output == ""  # what npm printed travels with the error


def test_pack_reports_every_manifest_problem_by_field(cli, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"name": "", "version": "1.0", "runtime": "wasm-js@1",
                                                      "entry": "x", "api": {"endpoints": [{"method": "GET"}]}}))
    out = cli("pack", str(folder), ok=False).output
    assert "manifest.json has 5 problem(s)" in out
    for field in ("name:", "version:", "entry:", "api.endpoints[0].path:", "api.endpoints[0].handler:"):
        assert f"\n  {field}" in out


def test_pack_needs_the_component_when_endpoints_are_declared(cli, tmp_path):
    folder = write_extension(tmp_path / "x", name="x", wasm=None, endpoints=ENDPOINTS)
    out = cli("pack", str(folder), ok=False).output
    assert "api.endpoints" in out and "npm run build" in out and "Traceback" not in out


def test_install_prints_ids_urls_and_is_idempotent(cli, mini, app):
    out = cli("install", str(mini)).output
    install = svc(app).standalone.registry.find(svc(app).settings.registry.default_tenant, "com.tests.cli")
    assert "installed (registry, version, bundle, install written)" in out
    for text in (install.registry_id, install.version_id, install.content_hash,
                 f"/ext-ui/{install.registry_id}/sha256%3A{install.hash_hex}/index.html?tenant=",
                 f"/api/ext/{install.registry_id}"):
        assert text in out
    again = json.loads(cli("install", str(mini), "--json").stdout)
    assert again["changed"] == [] and again["content_hash"] == install.content_hash
    (mini / "ui" / "index.html").write_text("<h1>changed</h1>")
    changed = json.loads(cli("install", str(mini), "--json", "--no-warm").stdout)
    assert changed["changed"] == ["bundle"] and changed["content_hash"] != install.content_hash


def test_wildcard_version_takes_the_next_free_patch(cli, tmp_path, mini_wasm):
    """X.Y.* as Alga's finalize resolves it; the same bytes again keep their version."""
    folder = write_extension(tmp_path / "wild", name="com.tests.wild", wasm=mini_wasm, endpoints=ENDPOINTS,
                             version="0.3.*")
    first = json.loads(cli("install", str(folder), "--json", "--no-warm").stdout)
    assert first["version"] == "0.3.0"
    assert json.loads(cli("install", str(folder), "--json", "--no-warm").stdout)["changed"] == []
    (folder / "ui" / "index.html").write_text("<h1>changed</h1>")
    assert json.loads(cli("install", str(folder), "--json", "--no-warm").stdout)["version"] == "0.3.1"
    (folder / "ui" / "index.html").write_text("<h1>changed again</h1>")
    third = json.loads(cli("install", str(folder), "--json", "--no-warm").stdout)
    assert third["version"] == "0.3.2" and third["changed"] == ["version", "bundle", "install"]


def test_tenants_and_unknown_tenant(cli, mini):
    assert "create it with: flask ext tenants create acme" in cli("install", str(mini), "-t", "acme", ok=False).output
    cli("tenants", "create", "acme", "--name", "Acme")
    listed = json.loads(cli("tenants", "list", "--json").stdout)
    assert [(t["id"], t["name"]) for t in listed][1:] == [("acme", "Acme")] and listed[0]["name"] == "Default"
    assert "already exists" in cli("tenants", "create", "acme", ok=False).output
    cli("install", str(mini), "-t", "acme", "--no-warm")
    assert json.loads(cli("list", "-t", "acme", "--json").stdout)[0]["tenant_id"] == "acme"
    assert "nothing installed" in cli("list").output


def test_list_show_enable_disable(cli, mini):
    cli("install", str(mini), "--no-warm")
    assert "com.tests.cli" in cli("list").output and "enabled" in cli("list").output
    shown = json.loads(cli("show", "com.tests.cli", "--json").stdout)
    assert shown["api_endpoints"] == ENDPOINTS and shown["enabled"] and shown["secrets"] == []
    assert "cap:log.emit" in shown["providers"] and len(shown["bundles"]) == 1
    assert "POST   /echo" in cli("show", "com.tests.cli").output
    cli("disable", "com.tests.cli")
    assert json.loads(cli("show", "com.tests.cli", "--json").stdout)["status"] == "disabled"
    cli("enable", shown["registry_id"])
    assert json.loads(cli("show", "com.tests.cli", "--json").stdout)["enabled"]
    assert "flask ext list" in cli("show", "nope", ok=False).output


def test_config(cli, mini):
    cli("install", str(mini), "--no-warm")
    cli("config", "set", "com.tests.cli", "region", "eu")
    cli("config", "set", "com.tests.cli", "mode", "fast")
    assert json.loads(cli("config", "get", "com.tests.cli", "--json").stdout) == {"region": "eu", "mode": "fast"}
    assert cli("config", "get", "com.tests.cli", "region").output.strip() == "eu"
    cli("config", "unset", "com.tests.cli", "region")
    assert "no config key 'region'" in cli("config", "get", "com.tests.cli", "region", ok=False).output


def test_secrets_are_encrypted_and_never_printed(cli, mini, app):
    cli("install", str(mini), "--no-warm")
    out = cli("secrets", "set", "com.tests.cli", "api_key", input="top-s3cret\n").output
    assert "top-s3cret" not in out
    cli("secrets", "set", "com.tests.cli", "other", "--value", "v2")
    assert json.loads(cli("secrets", "list", "com.tests.cli", "--json").stdout) == ["api_key", "other"]
    assert "top-s3cret" not in cli("show", "com.tests.cli", "--json").output
    registry = svc(app).standalone.registry
    install = registry.find(svc(app).settings.registry.default_tenant, "com.tests.cli")
    assert "top-s3cret" not in registry.secret_ciphertext(install.id)
    key_file = Path(svc(app).settings.registry.secrets_key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert svc(app).standalone.secrets.read(install) == {"api_key": "top-s3cret", "other": "v2"}
    cli("secrets", "rm", "com.tests.cli", "other")
    assert "has no secret 'other'" in cli("secrets", "rm", "com.tests.cli", "other", ok=False).output


def test_seed(cli, app, tmp_path):
    good = {"clients": [{"clientId": "c1", "clientName": "Acme"}],
            "services": [{"serviceId": "s1", "serviceName": "Support", "itemKind": "service",
                          "billingMethod": "hourly", "defaultRate": 95}]}
    (tmp_path / "seed.json").write_text(json.dumps(good))
    assert "1 client(s), 1 service(s)" in cli("seed", str(tmp_path / "seed.json")).output
    cli("seed", str(tmp_path / "seed.json"))  # loading again replaces, never duplicates
    db = svc(app).standalone.registry.db
    assert db.execute("SELECT count(*) FROM seed_client").fetchone()[0] == 1
    assert json.loads(db.execute("SELECT data FROM seed_service").fetchone()[0])["defaultRate"] == 95
    bad = [{"tenant": "nobody"}, {"clients": [{"clientId": "c1"}, {"clientId": "c1", "clientName": "x"}],
                                  "services": [{"serviceId": "s", "serviceName": "n", "itemKind": "thing",
                                                "billingMethod": "hourly"}], "extra": 1}]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    out = cli("seed", str(tmp_path / "bad.json"), ok=False).output
    for field in ("[1].clients[0].clientName", "[1].clients[1].clientId", "[1].services[0].itemKind", "[1].extra"):
        assert f"\n  {field}:" in out
    (tmp_path / "bad.json").write_text(json.dumps(bad[:1]))
    assert "unknown tenant 'nobody'" in cli("seed", str(tmp_path / "bad.json"), ok=False).output


def test_uninstall_and_purge(cli, mini):
    cli("install", str(mini), "--no-warm")
    assert "uninstalled com.tests.cli" in cli("uninstall", "com.tests.cli").output
    assert "is installed for tenant" in cli("uninstall", "com.tests.cli", ok=False).output
    cli("install", str(mini), "--no-warm")
    assert "(purged)" in cli("uninstall", "com.tests.cli", "--purge").output
    assert json.loads(cli("list", "--json").stdout) == []


def test_logs_without_redis_say_when_no_service_answers(cli, mini):
    cli("install", str(mini), "--no-warm")
    out = cli("logs", "com.tests.cli", "--url", f"http://127.0.0.1:{free_port()}", ok=False).output
    assert "no service answers at" in out and "RUNNER_DEBUG_REDIS_URL" in out and "Traceback" not in out


@pytest.mark.slow
def test_logs_without_redis_read_the_running_service(tmp_path, shared_dirs, mini_wasm):
    """`flask ext logs` in another process reads the service's own events (its SSE endpoint)."""
    env = {**flask_env(tmp_path, shared_dirs), "PORT": str(free_port())}
    folder = write_extension(tmp_path / "logged", name="com.tests.logged", wasm=mini_wasm, endpoints=ENDPOINTS)
    subprocess.run(flask("install", str(folder), "--no-warm"), cwd=ROOT, env=env, check=True, capture_output=True)
    proc, base = start_gunicorn(env, tmp_path / "gunicorn.log")
    try:
        assert requests.post(f"{base}/api/ext/com.tests.logged/echo?n=1", data=b"x", timeout=60).status_code == 200
        recent = subprocess.run(flask("logs", "com.tests.logged", "--url", base), cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
        assert recent.returncode == 0 and "info  [log]" in recent.stdout and "/echo?n=1" in recent.stdout
        follow = Lines(flask("logs", "com.tests.logged", "--follow", "-n", "1", "--url", base), env)
        try:
            follow.wait_for("/echo?n=1")
            requests.post(f"{base}/api/ext/com.tests.logged/echo?n=2", data=b"x", timeout=60)
            assert "[log]" in follow.wait_for("/echo?n=2")
        finally:
            follow.stop()
    finally:
        stop_process(proc)


@needs_redis
def test_logs_read_the_redis_stream(make_app, mini):
    server = RedisProcess().start()
    try:
        app = make_app(debug_redis_url=server.url)
        cli = app.test_cli_runner()
        assert cli.invoke(args=["ext", "install", str(mini), "--no-warm"]).exit_code == 0
        install = svc(app).standalone.registry.installs(svc(app).settings.registry.default_tenant)[0]
        key = f"ext-debug:{install.tenant_id}:{install.registry_id}"
        for n in range(3):
            server.client().xadd(key, {"ts": "1700000000000", "level": "warn", "stream": "log",
                                       "request": f"r{n}", "message": f"line {n}"})
        out = cli.invoke(args=["ext", "logs", "com.tests.cli", "-n", "2"]).output
        assert "line 0" not in out and "warn  [log] r1 line 1" in out and "line 2" in out
        events = [json.loads(line) for line in cli.invoke(args=["ext", "logs", "com.tests.cli", "--json"]).output
                  .splitlines()]
        assert [e["message"] for e in events] == ["line 0", "line 1", "line 2"]
        env = {**os.environ, "EXT_REGISTRY_DB": svc(app).settings.registry.registry_db,
               "RUNNER_DEBUG_REDIS_URL": server.url, "EXT_SCHEDULER_ENABLED": "false"}
        follow = Lines(flask("logs", "com.tests.cli", "--follow", "-n", "1"), env)
        try:
            follow.wait_for("line 2")
            server.client().xadd(key, {"ts": "1700000000000", "level": "error", "message": "live line"})
            assert "error [log] live line" in follow.wait_for("live line")
        finally:
            follow.stop()
    finally:
        server.stop()


def test_logs_say_when_redis_is_unreachable(make_app, mini):
    app = make_app(debug_redis_url="redis://127.0.0.1:1/0")
    cli = app.test_cli_runner()
    cli.invoke(args=["ext", "install", str(mini), "--no-warm"])
    result = cli.invoke(args=["ext", "logs", "com.tests.cli"])
    assert result.exit_code == 1 and "check RUNNER_DEBUG_REDIS_URL" in result.output
    assert "Traceback" not in result.output


def test_cli_commands_do_not_start_the_scheduler(shared_dirs, tmp_path):
    from helpers import base_config

    from app import create_app

    config = {**base_config(shared_dirs, tmp_path), "scheduler_enabled": True}
    with click.Context(click.Command("list"), info_name="list"):
        app = create_app(config)
    assert svc(app).standalone.scheduler._thread is None


# real processes ------------------------------------------------------------------------

def flask_env(tmp_path: Path, shared_dirs) -> dict:
    return {**os.environ, "EXT_REGISTRY_DB": str(tmp_path / "r.db"), "BUNDLE_STORE_BASE": str(tmp_path / "store"),
            "EXT_CACHE_ROOT": str(shared_dirs["cache"]), "EXT_SECRETS_KEY_FILE": str(tmp_path / "key"),
            "EXT_SCHEDULER_ENABLED": "false", "EXT_WORKERS": "1"}


def flask(*args: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "app:create_app", "ext", *args]


@pytest.mark.slow
def test_two_install_commands_at_once(tmp_path, shared_dirs, mini_wasm):
    folders = [write_extension(tmp_path / f"e{n}", name=f"com.tests.parallel{n % 2}", wasm=mini_wasm,
                               endpoints=ENDPOINTS, ui_html=f"<p>{n}</p>") for n in range(4)]
    env = flask_env(tmp_path, shared_dirs)
    procs = [subprocess.Popen(flask("install", str(f), "--json"), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for f in folders]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in outputs]
    listed = subprocess.run(flask("list", "--json"), cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    installs = {i["name"]: i for i in json.loads(listed.stdout)}
    assert sorted(installs) == ["com.tests.parallel0", "com.tests.parallel1"]
    results = [json.loads(out) for out, _ in outputs]
    for name, install in installs.items():  # the active bundle is one of the installs of that name
        assert install["content_hash"] in {r["content_hash"] for r in results if r["name"] == name}


class Lines:
    """A running command's output lines, awaited with a deadline."""

    def __init__(self, args: list[str], env: dict):
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.queue: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.queue.put(line) for line in self.proc.stdout], daemon=True).start()

    def wait_for(self, text: str, timeout: float = 60) -> str:
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                seen.append(self.queue.get(timeout=1))
            except queue.Empty:
                continue
            if text in seen[-1]:
                return seen[-1]
        raise AssertionError(f"{text!r} not seen in {seen}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.mark.slow
def test_dev_reinstalls_on_change(tmp_path, shared_dirs, mini_wasm):
    folder = write_extension(tmp_path / "dev", name="com.tests.dev", wasm=mini_wasm, endpoints=ENDPOINTS)
    dev = Lines(flask("dev", str(folder), "--interval", "0.2"), flask_env(tmp_path, shared_dirs))
    try:
        first = dev.wait_for("content hash")
        dev.wait_for("watching")
        (folder / "ui" / "index.html").write_text("<h1>edited</h1>")
        assert "ui/index.html" in dev.wait_for("changed:")
        second = dev.wait_for("content hash")
        assert first.split()[-1] != second.split()[-1]
    finally:
        dev.stop()


FAKE_NPM = """#!/bin/sh
# Stands in for npm: `npm ci` makes node_modules; `npm run build` copies src/main.wasm to dist/
# and fails like tsc while src/broken exists.
case "$1" in
  ci|install) mkdir -p node_modules && echo "added 1 package" ;;
  run) if [ -e src/broken ]; then echo "src/handler.ts(3,1): error TS1005: ';' expected."; exit 2; fi
       mkdir -p dist && cp src/main.wasm dist/main.wasm && echo built ;;
esac
"""


@pytest.mark.slow
def test_dev_builds_and_keeps_the_last_good_bundle_when_a_build_fails(tmp_path, shared_dirs, mini_wasm):
    folder = write_extension(tmp_path / "built", name="com.tests.built", wasm=None, endpoints=ENDPOINTS)
    (folder / "src").mkdir()
    (folder / "src" / "main.wasm").write_bytes(mini_wasm)
    (folder / "package.json").write_text(json.dumps({"scripts": {"build": "x"}, "devDependencies": {"x": "1"}}))
    (folder / "package-lock.json").write_text("{}")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(FAKE_NPM)
    (bin_dir / "npm").chmod(0o755)
    env = {**flask_env(tmp_path, shared_dirs), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    dev = Lines(flask("dev", str(folder), "--interval", "0.2"), env)

    def active() -> str:
        listed = subprocess.run(flask("list", "--json"), cwd=ROOT, env=env, capture_output=True, text=True)
        return json.loads(listed.stdout)[0]["content_hash"]

    try:
        dev.wait_for("npm ci (node_modules is missing): done in")  # a fresh folder builds with no other step
        dev.wait_for("npm run build: done in")
        assert re.search(r"✓ installed in \d+\.\d s: com\.tests\.built 1\.0\.0 sha256:", dev.wait_for("✓ installed"))
        dev.wait_for("watching")
        good = active()
        (folder / "src" / "broken").write_text("")
        assert "npm run build failed (exit status 2)" in dev.wait_for("error:")
        assert "error TS1005" in dev.wait_for("TS1005")  # npm's output is shown
        assert "the last good bundle stays live" in dev.wait_for("✗ not installed")
        assert active() == good
        (folder / "src" / "broken").unlink()
        (folder / "ui" / "index.html").write_text("<h1>fixed</h1>")
        dev.wait_for("✓ installed")
        assert active() != good
    finally:
        dev.stop()


def test_the_watcher_ignores_build_and_pack_outputs(tmp_path):
    """What a build writes (dist/, dist/types/ of the scaffold, ui/dist/) must not start another build."""
    from watchfiles import Change

    from standalone.watcher import _Filter

    root = tmp_path.resolve()
    built = _Filter(root, ignore_build_outputs=True)
    for rel in ("dist", "dist/main.wasm", "dist/types/runner.d.ts", "ui/dist/app.js", "node_modules/x/i.js",
                ".git/index", "src/.handler.ts.swp"):
        assert not built(Change.added, str(root / rel)), rel
    for rel in ("src/handler.ts", "ui/index.html", "manifest.json", "distant.txt", "wit/extension-runner.wit"):
        assert built(Change.modified, str(root / rel)), rel
    unbuilt = _Filter(root, ignore_build_outputs=False)  # no build script: dist/main.wasm is a source
    assert unbuilt(Change.modified, str(root / "dist/main.wasm"))
    assert not unbuilt(Change.modified, str(root / "dist/bundle.tar.zst"))
