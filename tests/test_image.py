"""The image, built here and run with podman (slow: about a minute and a half with a warm cache).

1. The acceptance flow against our own container: /healthz, an execute of the SDK fixture, an
   /ext-ui asset, the HEALTHCHECK, a graceful stop with a request in flight, and the compiled
   component reused from the cache volume by the next container.
2. Alga's own `docker-compose.runner-dev.yml` with only its build context changed: its facts
   (8085->8080, `.env.runner`, `./tmp-ext:/app/tmp-ext`) with 127.0.0.1 test servers for its hosts.
3. compose.yaml's create-bucket job and runner service against a local S3 server (moto) and
   redis-server, in place of MinIO and Redis (no registry here to pull their images from).

Every container uses the host's network (`--network host`, never `-p`) and its own PORT.
"""
from __future__ import annotations

import base64
import concurrent.futures
import json
import time
from pathlib import Path

import boto3
import pytest
import requests
import yaml
from containers import Container, build_image, podman, writable_by_runner
from fakes import FakeAlga
from helpers import ROOT, decoded_body, execute_body, free_port, publish
from moto.server import ThreadedMotoServer

from storage.bundles.archive import bundle_bytes
from storage.bundles.stores import bundle_key

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

UI = {"ui/index.html": b"<!doctype html><title>image test</title><script src=app.js></script>",
      "ui/app.js": b"console.log('served from the container');\n" * 40}
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def image():
    seconds = build_image()
    from containers import TEST_IMAGE

    record("build_s", round(seconds, 1))
    return TEST_IMAGE


def record(key: str, value) -> None:
    """Measured numbers, kept for the README's Deploy section (test-artifacts/image.json)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "image.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=2) + "\n")


@pytest.fixture
def containers():
    started: list[Container] = []
    yield started
    for c in started:
        c.remove()


def post(base: str, doc: dict, tenant: str, extension: str, timeout: float = 120, **headers) -> requests.Response:
    return requests.post(f"{base}/v1/execute", data=json.dumps(doc), timeout=timeout,
                         headers={"content-type": "application/json", "x-alga-tenant": tenant,
                                  "x-alga-extension": extension, **headers})


# -- 1. our own container -------------------------------------------------------------------

def test_image_metadata(image):
    info = json.loads(podman("image", "inspect", image).stdout)[0]
    config = info["Config"]
    size_mb = info["Size"] / 1e6
    record("size_mb", round(size_mb, 1))
    assert size_mb < 300
    assert config["User"] == "10001:10001"
    assert "8080/tcp" in config["ExposedPorts"]
    env = dict(e.split("=", 1) for e in config["Env"])
    assert (env["HOST"], env["PORT"], env["EXT_CACHE_ROOT"]) == ("0.0.0.0", "8080", "/app/tmp-ext")
    assert "/livez" in " ".join(info["Healthcheck"]["Test"])
    assert config["StopSignal"] in ("SIGTERM", "15")
    # what only the build needed is gone: the CA secret (never a layer), pip, a compiler, node
    check = "test ! -e /run/secrets/hostca && ! python3 -m pip --version && ! command -v cc && ! command -v node"
    podman("run", "--rm", "--network", "host", "--entrypoint", "sh", image, "-c", check + " >/dev/null 2>&1")


def test_acceptance_flow_in_the_container(image, containers, tmp_path, sdk_wasm):
    store = tmp_path / "bundles"
    digest = publish(store, "tenant-ok", "ext-ok", {"dist/main.wasm": sdk_wasm, **UI})
    cache = writable_by_runner(tmp_path / "cache")  # a volume: compiled components outlive the container
    port = free_port()
    env = {"PORT": str(port), "BUNDLE_STORE_BASE": "/bundles", "EXT_WORKERS": "2",
           "EXT_STATIC_STRICT_VALIDATION": "false"}
    # Like the Kubernetes manifests: read-only root, writable /tmp, /app/var and cache only.
    volumes = [f"{store}:/bundles:ro", f"{cache}:/app/tmp-ext"]
    extra = ["--read-only", "--tmpfs", "/app/var:rw,mode=1777"]
    first = Container(image, port, env, volumes, extra=extra)
    containers.append(first)
    first.start()
    record("first_livez_s", round(time.monotonic() - first.started_at, 1))
    assert f"Listening at: http://0.0.0.0:{port}" in first.logs()  # the image's default bind

    health = requests.get(f"{first.base}/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["cache_writable"] is True
    assert podman("healthcheck", "run", first.name, check=False).returncode == 0

    started = time.monotonic()
    payload = b'{"hello":"container"}'
    doc = execute_body(digest, tenant="tenant-ok", extension="ext-ok", method="POST", body=payload,
                       http={"path": "/dynamic/echo", "query": {"foo": "bar"}},
                       providers=["cap:context.read", "cap:log.emit"])
    r = post(first.base, doc, "tenant-ok", "ext-ok")
    record("first_sdk_execute_s", round(time.monotonic() - started, 1))  # includes the compile
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == 200 and out["error"] is None
    body = decoded_body(out)
    assert body["tenantId"] == "tenant-ok" and bytes(body["echo"]) == payload

    asset = requests.get(f"{first.base}/ext-ui/ext-ok/sha256:{digest}/app.js?tenant=tenant-ok", timeout=10)
    assert asset.status_code == 200 and asset.content == UI["ui/app.js"]
    assert asset.headers["ETag"].startswith('"sha256-') and "immutable" in asset.headers["Cache-Control"]
    again = requests.get(asset.url, headers={"If-None-Match": asset.headers["ETag"]}, timeout=10)
    assert again.status_code == 304

    # Graceful stop: SIGTERM while an execution runs; it is answered, then the container exits 0.
    slow = execute_body(digest, tenant="tenant-ok", extension="ext-ok", path="/loop", limits={"timeout_ms": 2500})
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(post, first.base, slow, "tenant-ok", "ext-ok")
        time.sleep(0.5)
        stop_sent = time.monotonic()
        first.signal("TERM")
        answer = in_flight.result(timeout=60)
    assert answer.status_code == 200 and answer.json()["error"].startswith("execute_failed: timeout")
    assert first.wait_exit(timeout=60) == 0
    stop_s = time.monotonic() - stop_sent
    record("graceful_stop_s", round(stop_s, 1))
    assert stop_s < 30  # inside Gunicorn's graceful_timeout

    # The next container on the same cache volume loads the precompiled component: no compile.
    assert list(cache.glob("*/compiled/*.cwasm"))
    port = free_port()
    second = Container(image, port, {**env, "PORT": str(port)}, volumes, extra=extra)
    containers.append(second)
    second.start()
    started = time.monotonic()
    r = post(second.base, doc, "tenant-ok", "ext-ok")
    warm_s = time.monotonic() - started
    record("warm_sdk_execute_after_restart_s", round(warm_s, 2))
    assert r.status_code == 200 and r.json()["status"] == 200
    assert "compiled component" not in second.logs() and warm_s < 5
    assert second.stop() == 0


# -- 2. Alga's docker-compose.runner-dev.yml --------------------------------------------------

# The facts of Alga's runner-dev compose file (service `extension-runner`): it builds the image,
# publishes host port ${RUNNER_DOCKER_PORT:-8085} to container port 8080, passes `.env.runner`
# as env_file and mounts ./tmp-ext at /app/tmp-ext. `.env.runner` as Alga ships it, with its
# hosts ({alga} = the Alga app on :3000, {s3} = MinIO on :9000) replaced by 127.0.0.1 test servers.
ALGA_CONTAINER_PORT = 8080
ALGA_ENV_RUNNER = {
    "RUNNER_REGISTRY_BASE_URL": "http://{alga}", "REGISTRY_BASE_URL": "http://{alga}",
    "STORAGE_API_BASE_URL": "http://{alga}",
    "RUNNER_BUNDLE_STORE_BASE": "http://{s3}/extensions", "BUNDLE_STORE_BASE": "http://{s3}/extensions",
    "RUNNER_ALGA_AUTH_KEY": "local-runner-key", "ALGA_AUTH_KEY": "local-runner-key",
    "RUNNER_STORAGE_API_TOKEN": "local-runner-key", "RUNNER_SERVICE_TOKEN": "local-runner-key",
    "RUNNER_DOCKER_PORT": "8085", "PORT": "8080",
    "S3_ACCESS_KEY": "minioadmin", "S3_SECRET_KEY": "minioadmin", "S3_REGION": "us-east-1",
    "S3_ENDPOINT": "http://{s3}", "S3_BUCKET": "extensions",
    "UI_PROXY_BASE_URL": "http://{alga}", "UI_PROXY_AUTH_KEY": "local-runner-key",
    "RUNNER_PUBLIC_BASE": "/runner", "EXT_STATIC_STRICT_VALIDATION": "false", "RUST_LOG": "info,ext=info",
}
TENANT, EXTENSION = "11111111-2222-4333-8444-555555555555", "66666666-7777-4888-9999-000000000000"


def port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


@pytest.fixture(scope="module")
def moto():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


def s3(endpoint: str):
    return boto3.client("s3", endpoint_url=f"http://{endpoint}", region_name="us-east-1",
                        aws_access_key_id="minioadmin", aws_secret_access_key="minioadmin")


@pytest.fixture(scope="module")
def alga_runner(image, moto, mini_wasm, tmp_path_factory):
    """The runner as Alga's runner-dev compose file starts it, on 127.0.0.1 stand-ins for its hosts."""
    work = tmp_path_factory.mktemp("alga-runner-dev")
    client = s3(moto)
    client.create_bucket(Bucket="extensions")
    data, digest = bundle_bytes({"dist/main.wasm": mini_wasm, **UI})
    client.put_object(Bucket="extensions", Key=bundle_key(TENANT, EXTENSION, digest), Body=data)
    alga = FakeAlga(token="local-runner-key")
    values = {k: v.format(alga=f"127.0.0.1:{alga.server.port}", s3=moto) for k, v in ALGA_ENV_RUNNER.items()}
    env_file = work / ".env.runner"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    # ./tmp-ext as `docker compose` creates a missing bind-mount source: root's, mode 755.
    tmp_ext = work / "tmp-ext"
    tmp_ext.mkdir(mode=0o755)
    # With the host's network there is no 8085->8080 mapping: the container's port is the host's.
    # Keep .env.runner's PORT=8080 when that port is free here, else give the container its own.
    port = ALGA_CONTAINER_PORT if port_is_free(ALGA_CONTAINER_PORT) else free_port()
    env = {} if port == ALGA_CONTAINER_PORT else {"PORT": str(port)}
    runner = Container(image, port, env, [f"{tmp_ext}:/app/tmp-ext:rw"], env_file=env_file)
    try:
        runner.start()
        yield {"runner": runner, "digest": digest, "alga": alga}
    finally:
        runner.remove()
        alga.close()


def gateway_request(alga_runner, **headers) -> requests.Response:
    """POST /v1/execute as Alga's gateway route builds it (alga-compat.md: the headers it sends)."""
    digest = alga_runner["digest"]
    doc = execute_body(digest, tenant=TENANT, extension=EXTENSION, path="/echo", body=b"from the gateway",
                       context={"install_id": "install-1", "version_id": "version-1", "config": {}},
                       user={"user_id": "u1", "user_email": "a@example.com", "user_name": "A", "user_type": "internal",
                             "company_name": "Example"})
    return post(alga_runner["runner"].base, doc, TENANT, EXTENSION, **{
        "x-request-id": "req-gw-1", "x-idempotency-key": "req-gw-1", **headers})


def test_alga_runner_dev_compose_starts_this_runner(alga_runner):
    runner = alga_runner["runner"]
    health = requests.get(f"{runner.base}/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["bundle_store"] == "ok"
    logs = runner.logs()
    # the root-owned ./tmp-ext is not writable for the image's user: a private cache, and it says why
    assert "/app/tmp-ext is not writable by uid 10001" in logs


def test_alga_requests_succeed_against_it(alga_runner):
    # .env.runner sets RUNNER_SERVICE_TOKEN; Alga's gateway sends no token, and gets in
    r = gateway_request(alga_runner)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == 200 and base64.b64decode(out["body_b64"]) == b"from the gateway"
    # the UI through the /runner prefix (RUNNER_PUBLIC_BASE), as Alga's UI proxy forwards it
    asset = ui_through_alga_proxy(alga_runner)
    assert asset.status_code == 200 and asset.content == UI["ui/app.js"]


def ui_through_alga_proxy(alga_runner) -> requests.Response:
    digest = alga_runner["digest"]
    return requests.get(f"{alga_runner['runner'].base}/runner/ext-ui/{EXTENSION}/sha256:{digest}/app.js",
                        headers={"x-tenant-id": TENANT, "accept-encoding": "gzip, br"}, timeout=10)


def test_alga_ui_proxy_gets_identity_bodies(alga_runner):
    assert "content-encoding" not in ui_through_alga_proxy(alga_runner).headers


# -- 3. compose.yaml's services against local stand-ins -------------------------------------

@pytest.fixture
def redis_server():
    from helpers import REDIS_SERVER, RedisProcess

    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (make system-deps)")
    server = RedisProcess().start()
    yield server
    server.stop()


def compose_env(service: dict, replacements: dict[str, str]) -> dict[str, str]:
    env = {}
    for key, value in service["environment"].items():
        for old, new in replacements.items():
            value = str(value).replace(old, new)
        env[key] = value
    return env


def test_compose_bucket_job_and_runner_service(image, containers, tmp_path, redis_server, moto):
    stack = yaml.safe_load((ROOT / "compose.yaml").read_text())
    # MinIO and Redis become 127.0.0.1 servers. Moto servers in one process share their buckets and
    # the Alga test above already made "extensions", so this stack gets a bucket of its own name.
    swap = {"minio:9000/extensions": f"{moto}/compose-extensions", "redis:6379": f"127.0.0.1:{redis_server.port}"}

    job = stack["services"]["create-bucket"]
    entrypoint = job["entrypoint"]
    args = ["run", "--rm", "--network", "host", "--entrypoint", entrypoint[0]]
    for key, value in compose_env(job, swap).items():
        args += ["-e", f"{key}={value}"]
    done = podman(*args, image, *entrypoint[1:], timeout=120)
    assert "created compose-extensions" in done.stdout, done.stdout + done.stderr
    client = s3(moto)
    assert "compose-extensions" in [b["Name"] for b in client.list_buckets()["Buckets"]]
    assert "exists" in podman(*args, image, *entrypoint[1:], timeout=120).stdout  # a re-run is harmless

    service = stack["services"]["runner"]
    port = free_port()
    env = {**compose_env(service, swap), "PORT": str(port)}
    runner = Container(image, port, env, [f"{writable_by_runner(tmp_path / 'cache')}:/app/tmp-ext"])
    containers.append(runner)
    runner.start(timeout=180)  # the samples are installed (and compiled) before workers start
    record("compose_runner_livez_with_samples_s", round(time.monotonic() - runner.started_at, 1))
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="compose-extensions").get("Contents", [])]
    assert len(keys) == 2 and all(k.endswith("/bundle.tar.zst") for k in keys)  # both samples, in S3

    r = requests.get(f"{runner.base}/api/ext/com.alga.sample.sdk-handler/hello", timeout=60)
    assert r.status_code == 200 and r.json()["message"] == "Hello from the SDK handler"
    redis = redis_server.client()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = [fields for key in redis.keys("ext-debug:*") for _, fields in redis.xrange(key)]
        if any("hello from sdk-handler" in (v.decode() if isinstance(v, bytes) else v)
               for e in events for v in e.values()):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"no debug event in Redis: {events}")
    assert runner.stop() == 0
