"""Helpers for tests: building bundles and /v1/execute requests."""
from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from storage.bundles.archive import bundle_bytes

FIXTURES = Path(__file__).parent / "fixtures"
GUESTS = FIXTURES / "guests"
ROOT = Path(__file__).parent.parent


def base_config(dirs: dict[str, Path], tmp: Path) -> dict[str, Any]:
    return {
        "bundle_store_base": str(dirs["bundles"]),
        "cache_root": str(dirs["cache"]),
        "workers": 2,
        "static_strict_validation": False,
        "registry_db": str(tmp / "registry.db"),
        "secrets_key_file": str(tmp / "secrets.key"),
        "scheduler_enabled": False,
        "install_samples": False,
    }


def publish(store_dir: Path | str, tenant: str, extension: str, members: dict[str, bytes | str | Path]) -> str:
    """Put a bundle where a local bundle store finds it; returns its content hash (hex)."""
    data, digest = bundle_bytes(members)
    path = Path(store_dir) / "tenants" / tenant / "extensions" / extension / "sha256" / digest / "bundle.tar.zst"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def execute_body(content_hash: str, *, method: str = "POST", path: str = "/", body: bytes | None = None,
                 tenant: str = "tenant-a", extension: str = "ext-a", **extra: Any) -> dict[str, Any]:
    """A /v1/execute request body as the Alga gateway builds it."""
    doc: dict[str, Any] = {
        "context": {"request_id": "req-1", "tenant_id": tenant, "extension_id": extension,
                    "install_id": "install-1", "content_hash": f"sha256:{content_hash}", "version_id": "v1"},
        "http": {"method": method, "path": path, "query": {}, "headers": {},
                 "body_b64": None if body is None else base64.b64encode(body).decode()},
        "limits": {"timeout_ms": 5000},
    }
    for key, value in extra.items():
        if key in ("context", "http", "limits") and isinstance(value, dict):
            doc[key].update(value)
        else:
            doc[key] = value
    return doc


def post_execute(client, doc: dict, tenant: str = "tenant-a", extension: str = "ext-a", **headers: str):
    hdrs = {"x-alga-tenant": tenant, "x-alga-extension": extension, **headers}
    return client.post("/v1/execute", data=json.dumps(doc), headers=hdrs, content_type="application/json")


def decoded_body(payload: dict) -> Any:
    raw = base64.b64decode(payload["body_b64"]) if payload["body_b64"] is not None else None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict[str, str], log: Path, wait: bool = True, own_group: bool = False):
    """The service under Gunicorn (gunicorn.conf.py) with ``env`` added; returns (process, base URL).

    ``env`` must set PORT; HOST is 127.0.0.1 unless ``env`` says otherwise (this machine may be a
    container, where the default is 0.0.0.0). With ``wait``, returns once /livez answers (the log
    tail is shown if it never does).
    With ``own_group`` it runs in a process group of its own, which ``os.killpg`` ends whole (a replica dying).
    """
    import os
    import subprocess
    import sys
    import time

    import pytest
    import requests

    base = f"http://127.0.0.1:{env['PORT']}"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
                                 "app:create_app()"], cwd=ROOT, env={**os.environ, "HOST": "127.0.0.1", **env},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=own_group)
    for _ in range(300 if wait else 0):
        try:
            if requests.get(f"{base}/livez", timeout=2).ok:
                break
        except requests.RequestException:  # not listening yet, or still booting
            time.sleep(0.1)
    else:
        if wait:
            proc.kill()
            pytest.fail("gunicorn did not start: " + log.read_text()[-2000:])
    return proc, base


def stop_process(proc) -> None:
    import signal
    import subprocess

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def call_context(settings, *, tenant: str = "t", extension: str = "e", install: str | None = None,
                 request: str | None = None, version: str | None = None, grants=(), **fields):
    """A host-function CallContext for ``settings`` (a settings.Settings), built as a worker builds it."""
    from runner.messages import ExecutionIds, WorkerConfig
    from runner.worker.host.call import CallContext, HostState

    host = HostState.build(WorkerConfig(settings.runner, settings.alga, settings.registry, "info"))
    return CallContext(host=host, ids=ExecutionIds(tenant, extension, install, request, version),
                       grants=frozenset(grants), **fields)


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
needs_redis = pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="redis-server is not installed "
                                 "(apt-get install redis-server, or `make system-deps`)")


class RedisProcess:
    def __init__(self, port: int | None = None, password: str | None = None):
        self.port = port or free_port()
        self.password = password
        self.proc = None

    def start(self) -> "RedisProcess":
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, decode_responses=True)
