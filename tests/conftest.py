"""Shared fixtures: apps on temporary folders, bundles built from the committed guests.

The cache root is shared by the whole session unless a test asks for its own:
it is content-addressed, so the 13 MB SDK component is compiled once per run.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers import GUESTS, REDIS_SERVER, RedisProcess, base_config

from app import service_of as svc


@pytest.fixture(scope="session")
def mini_wasm() -> bytes:
    import wasmtime  # the test process may import it; the service's web side never does

    return bytes(wasmtime.wat2wasm((GUESTS / "mini.component.wat").read_text()))


@pytest.fixture(scope="session")
def sdk_wasm() -> bytes:
    return (GUESTS / "sdk.wasm").read_bytes()


@pytest.fixture(scope="session")
def shared_dirs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("shared")
    return {"bundles": base / "bundles", "cache": base / "cache"}


@pytest.fixture
def make_app(shared_dirs, tmp_path):
    """``make_app(**settings)`` -> a Flask app; its worker pool is closed after the test."""
    from app import create_app

    apps = []

    def make(**overrides):
        app = create_app({**base_config(shared_dirs, tmp_path), **overrides})
        app.testing = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        svc(app).lifecycle.stop()


@pytest.fixture(scope="module")
def module_app(shared_dirs, tmp_path_factory):
    """One app (and worker pool) for a whole test module with default settings."""
    from app import create_app

    app = create_app(base_config(shared_dirs, tmp_path_factory.mktemp("app")))
    app.testing = True
    yield app
    svc(app).lifecycle.stop()


@pytest.fixture(scope="module")
def redis_proc():
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed")
    server = RedisProcess().start()
    yield server
    server.stop()
