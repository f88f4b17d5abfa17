"""Where the service listens: the reference's 0.0.0.0:8080 in a container, loopback elsewhere, and a
HOST that holds a URL (Alga's compose.env) ignored instead of stopping the service."""
import json
import os
import subprocess
import sys

import pytest
import requests
from helpers import ROOT, free_port, start_gunicorn, stop_process

from service import settings as service_settings
from settings import Settings

ALGA_ENV_RUNNER = {"PORT": "8080", "RUNNER_DOCKER_PORT": "8085", "RUST_LOG": "info,ext=info"}  # no HOST


@pytest.fixture
def container(monkeypatch, tmp_path):
    """``container(True|False)``: pretend to run inside a container, or not, whatever this machine is."""
    def set_to(inside: bool):
        marker = tmp_path / ".dockerenv"
        if inside:
            marker.touch()
        monkeypatch.setattr(service_settings, "CONTAINER_FILES", (str(marker),))
        for name in service_settings.CONTAINER_VARIABLES:
            monkeypatch.delenv(name, raising=False)
    return set_to


def bind(environ: dict) -> str:
    return Settings.from_env(environ).service.bind


def test_alga_env_in_a_container_listens_where_the_reference_does(container):
    container(True)
    assert bind(ALGA_ENV_RUNNER) == "0.0.0.0:8080"
    assert bind({}) == "0.0.0.0:8080"


def test_outside_a_container_the_default_stays_on_loopback(container):
    container(False)
    assert bind({}) == "127.0.0.1:8085"
    assert bind({"PORT": "8080"}) == "127.0.0.1:8080"


@pytest.mark.parametrize("variable", ["container", "KUBERNETES_SERVICE_HOST", "K_SERVICE"])
def test_container_variables_count(container, variable):
    container(False)
    assert bind({variable: "podman" if variable == "container" else "x"}) == "0.0.0.0:8080"


@pytest.mark.parametrize("host, expected", [
    ("http://localhost:3000", "127.0.0.1:8085"),  # Alga's compose.env: a URL, ignored
    ("https://alga.example.com", "127.0.0.1:8085"),
    ("not a host", "127.0.0.1:8085"),
    ("", "127.0.0.1:8085"),
    ("0.0.0.0", "0.0.0.0:8085"),
    ("::", "[::]:8085"),
    ("[::1]", "[::1]:8085"),
    ("localhost", "localhost:8085"),
    (" runner.internal ", "runner.internal:8085"),
])
def test_host_values(container, caplog, host, expected):
    container(False)
    assert bind({"HOST": host}) == expected
    if "://" in host:
        assert any("ignoring invalid HOST" in r.getMessage() and "a URL" in r.getMessage() for r in caplog.records)


def test_a_url_host_in_a_container_still_listens_everywhere(container):
    container(True)
    assert bind({"HOST": "http://localhost:3000", "PORT": "8080"}) == "0.0.0.0:8080"


def test_gunicorn_conf_binds_what_the_settings_say():
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "PORT")}
    out = subprocess.run([sys.executable, "-c", "import runpy, json; c = runpy.run_path('gunicorn.conf.py'); "
                          "print(json.dumps(c['bind']))"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**env, "HOST": "::1", "PORT": "9099"})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == "[::1]:9099", out.stderr


def test_the_service_starts_with_a_url_in_host(tmp_path):
    """Gunicorn with Alga's compose.env HOST: it starts, and says why it ignored the value."""
    env = {"HOST": "http://localhost:3000", "PORT": str(free_port()), "EXT_WORKERS": "1",
           "EXT_REGISTRY_DB": str(tmp_path / "r.db"), "BUNDLE_STORE_BASE": str(tmp_path / "b"),
           "EXT_CACHE_ROOT": str(tmp_path / "c"), "EXT_SECRETS_KEY_FILE": str(tmp_path / "k"),
           "container": ""}  # loopback unless this machine is itself a container
    proc, base = start_gunicorn(env, tmp_path / "server.log")
    try:
        assert requests.get(f"{base}/livez", timeout=5).ok
    finally:
        stop_process(proc)
    assert "ignoring invalid HOST='http://localhost:3000'" in (tmp_path / "server.log").read_text()
