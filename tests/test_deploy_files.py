"""The deployment files without running them: Containerfile (hadolint and its promises),
compose.yaml (the compose-spec schema), the Kubernetes manifests (kubernetes-validate --strict),
the Knative Service (Knative Serving's own CRD schema), and the sizing rule that ties
EXT_WORKERS, EXT_QUEUE_SIZE and Gunicorn to the CPU and concurrency numbers.

Running the image is tests/test_image.py (slow).
"""
from __future__ import annotations

import ast
import copy
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from crd_schema import CRD_ENV, find_crd, validation_errors
from helpers import ROOT

import settings

BIN = Path(sys.executable).parent
CONTAINERFILE = ROOT / "Containerfile"
DEPLOY = ROOT / "deploy"
K8S_FILES = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
KNATIVE = DEPLOY / "knative" / "service.yaml"
COMPOSE = ROOT / "compose.yaml"
RUNNER_UID = 10001


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kind(k: str) -> dict:
    found = [d for p in K8S_FILES for d in docs(p) if d["kind"] == k]
    assert len(found) == 1, k
    return found[0]


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def graceful_timeout() -> int:
    """graceful_timeout from gunicorn.conf.py, read without importing it (it reads the environment)."""
    tree = ast.parse((ROOT / "gunicorn.conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "graceful_timeout" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("gunicorn.conf.py sets no graceful_timeout")


def cpu_cores(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if str(quantity).endswith("m") else float(quantity)


# -- Containerfile --------------------------------------------------------------------------

def test_hadolint_finds_nothing():
    done = subprocess.run([str(BIN / "hadolint"), "--failure-threshold", "style", str(CONTAINERFILE)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_is_not_a_rubber_stamp(tmp_path):
    bad = tmp_path / "Containerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\nADD . /app\n")
    done = subprocess.run([str(BIN / "hadolint"), str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "DL3007" in done.stdout and "DL3013" in done.stdout


def containerfile() -> str:
    # Instructions with their continuation lines joined.
    return re.sub(r"\\\n\s*", " ", CONTAINERFILE.read_text())


def instructions(name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in containerfile().splitlines()
            if line.split(None, 1)[:1] == [name]]


def test_containerfile_promises():
    text = containerfile()
    base = instructions("ARG")[0]
    assert re.fullmatch(r"BASE_IMAGE=\S+python:3\.11\.\d+-slim-bookworm", base), base  # pinned, not latest
    assert instructions("FROM") == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]  # multi-stage on the argument
    assert instructions("EXPOSE") == ["8080"]
    assert instructions("USER") == ["${UID}:${UID}"] and f"ARG UID={RUNNER_UID}" in text
    env = " ".join(instructions("ENV"))
    for pair in ("HOST=0.0.0.0", "PORT=8080", "EXT_CACHE_ROOT=/app/tmp-ext"):
        assert pair in env
    (check,) = instructions("HEALTHCHECK")
    assert "/livez" in check
    assert 'CMD ["gunicorn", "-c", "gunicorn.conf.py"' in text
    # the CA bundle only ever arrives as a build secret: nothing copies or bakes it in
    assert "--mount=type=secret,id=hostca,required=false" in text
    assert "ca-certificates.crt" not in text.replace("src=/etc/ssl/certs/ca-certificates.crt", "")
    assert "npm" not in " ".join(instructions("RUN")) and "node" not in " ".join(instructions("RUN"))


def test_dockerfile_is_the_containerfile():
    """Alga's runner-dev compose file builds `Dockerfile` (a symlink is unreliable under BuildKit)."""
    assert (ROOT / "Dockerfile").read_bytes() == CONTAINERFILE.read_bytes()


def entrypoint(env: dict[str, str]) -> dict[str, str]:
    """The environment deploy/entrypoint.sh hands to the command (run on the host with `env`)."""
    done = subprocess.run([str(DEPLOY / "entrypoint.sh"), "env", "-0"], capture_output=True,
                          env={"PATH": "/usr/bin:/bin", **env})
    assert done.returncode == 0, done.stderr
    return dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if item)


def test_entrypoint_leaves_host_to_the_settings(tmp_path):
    """A URL in HOST is the settings' business (tests/test_binding.py), not the entry point's."""
    for host in ("http://alga.example.com:3000", "127.0.0.1"):
        assert entrypoint({"HOST": host, "EXT_CACHE_ROOT": str(tmp_path)})["HOST"] == host


def test_entrypoint_falls_back_to_a_private_cache_when_the_volume_is_not_writable(tmp_path):
    assert entrypoint({"EXT_CACHE_ROOT": str(tmp_path)})["EXT_CACHE_ROOT"] == str(tmp_path)
    assert list(tmp_path.iterdir()) == []  # its write probe is removed
    env = entrypoint({"EXT_CACHE_ROOT": "/dev/null/cache", "TMPDIR": str(tmp_path)})  # unwritable even for root
    assert env["EXT_CACHE_ROOT"] == str(tmp_path / "ext-cache") and (tmp_path / "ext-cache").is_dir()


def test_build_context_holds_what_the_containerfile_copies():
    """.dockerignore keeps the context small by listing what goes in; every COPY source is listed."""
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    sources = []
    for args in instructions("COPY"):
        if args.startswith("--from="):
            continue
        sources += args.split()[:-1]
    assert sources and {s.rstrip("/") for s in sources} <= allowed
    for source in sources:
        assert (ROOT / source).exists(), source


def test_constraints_pin_every_package_and_agree_with_pyproject():
    pins = {}
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned: {line}"
            pins[name.lower().replace("_", "-").replace(".", "-")] = version
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name, _, version = dep.split("#")[0].strip().partition("==")
        name = name.split("[")[0]
        assert pins.get(name.lower().replace("_", "-").replace(".", "-")) == version, dep


# -- compose.yaml ---------------------------------------------------------------------------

def test_compose_file_matches_the_compose_spec_schema():
    """The compose-spec JSON schema vendored by check-jsonschema (a pinned test dependency)."""
    done = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_schema_check_rejects_a_misspelt_key(tmp_path):
    bad = tmp_path / "compose.yaml"
    bad.write_text(COMPOSE.read_text().replace("    stop_grace_period:", "    stop_grace_periods:", 1))
    done = subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(bad)],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "stop_grace_periods" in done.stdout


def test_compose_stack_wiring():
    stack = yaml.safe_load(COMPOSE.read_text())
    services = stack["services"]
    assert set(services) == {"runner", "create-bucket", "minio", "redis"}
    runner, job = services["runner"], services["create-bucket"]
    assert runner["build"] == {"context": ".", "dockerfile": "Containerfile"} and job["image"] == runner["image"]
    assert runner["depends_on"]["create-bucket"] == {"condition": "service_completed_successfully"}
    assert job["environment"]["BUNDLE_STORE_BASE"] == runner["environment"]["BUNDLE_STORE_BASE"]
    assert runner["environment"]["BUNDLE_STORE_BASE"].startswith("http://minio:9000/")
    assert runner["environment"]["RUNNER_DEBUG_REDIS_URL"].startswith("redis://redis:6379")
    assert runner["environment"]["EXT_INSTALL_SAMPLES"] == "true"
    assert "runner-cache:/app/tmp-ext" in " ".join(runner["volumes"])
    for service in services.values():  # published on loopback only
        assert all(p.startswith("127.0.0.1:") for p in service.get("ports", []))
    assert int(runner["stop_grace_period"].rstrip("s")) > graceful_timeout()
    assert all("latest" not in s.get("image", "") and ":" in s.get("image", "") for s in services.values())


# -- Kubernetes -----------------------------------------------------------------------------

def kubernetes_validate(*paths: Path, version: str | None = None) -> subprocess.CompletedProcess:
    args = [str(BIN / "kubernetes-validate"), "--strict", "--quiet", *(["-k", version] if version else []),
            *map(str, paths)]
    return subprocess.run(args, capture_output=True, text=True)


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_core_manifests_pass_kubernetes_validate_strict(version):
    assert {p.name for p in K8S_FILES} == {"config.yaml", "deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"}
    done = kubernetes_validate(*K8S_FILES, version=version)
    assert done.returncode == 0, done.stdout + done.stderr


def test_kubernetes_validate_strict_rejects_a_misspelt_field(tmp_path):
    bad = tmp_path / "deployment.yaml"
    bad.write_text((DEPLOY / "kubernetes" / "deployment.yaml").read_text()
                   .replace("terminationGracePeriodSeconds:", "terminationGracePeriodSecond:"))
    done = kubernetes_validate(bad)
    assert done.returncode != 0 and "terminationGracePeriodSecond" in done.stdout + done.stderr


@pytest.fixture(scope="module")
def knative_crd() -> Path:
    path = find_crd()
    if path is None:
        pytest.skip(f"Knative Serving's Service CRD (knative/serving config/core/300-resources/service.yaml, "
                    f"v1.23.0) is not on this machine: set {CRD_ENV} to it, or keep it as "
                    f"shared/research/schemas/knative-serving-v1.23.0-service.yaml")
    return path


def test_knative_service_matches_knative_servings_crd(knative_crd):
    assert validation_errors(yaml.safe_load(KNATIVE.read_text()), knative_crd) == []


def test_knative_crd_check_rejects_what_knative_rejects(knative_crd):
    service = yaml.safe_load(KNATIVE.read_text())
    bad = copy.deepcopy(service)
    spec = bad["spec"]["template"]["spec"]
    spec["containerConcurency"] = spec.pop("containerConcurrency")  # misspelt
    spec["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "5"]}}}  # not allowed in Knative
    errors = validation_errors(bad, knative_crd)
    assert any("containerConcurency" in e for e in errors) and any("lifecycle" in e for e in errors)


def test_knative_service_is_like_the_reference():
    service = yaml.safe_load(KNATIVE.read_text())
    assert service["apiVersion"] == "serving.knative.dev/v1" and service["kind"] == "Service"
    template = service["spec"]["template"]
    notes = template["metadata"]["annotations"]
    assert notes["autoscaling.knative.dev/metric"] == "concurrency"
    assert int(notes["autoscaling.knative.dev/target"]) >= 1 and int(notes["autoscaling.knative.dev/min-scale"]) >= 1
    (container,) = template["spec"]["containers"]
    assert container["ports"] == [{"name": "http1", "containerPort": 8080}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert {"configMapRef": {"name": "alga-ext-runner-config"}} in container["envFrom"]
    assert {"secretRef": {"name": "alga-ext-runner-secrets"}} in container["envFrom"]
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/app/tmp-ext"]]
    assert container["resources"]["limits"]["cpu"] and container["resources"]["limits"]["memory"]


# -- sizing: one rule for every workload (README, "Deploy", "Sizing") -------------------------

def test_knative_sizing_lines_up():
    spec = yaml.safe_load(KNATIVE.read_text())["spec"]["template"]
    (container,) = spec["spec"]["containers"]
    env = env_of(container)
    workers, cc = int(env["EXT_WORKERS"]), spec["spec"]["containerConcurrency"]
    assert workers == cpu_cores(container["resources"]["limits"]["cpu"])  # one wasm worker per core
    assert cc == 2 * workers  # one running and one waiting per worker
    cap = int(env.get("EXT_MAX_WORKERS_PER_EXTENSION", 0)) or max(1, workers - 1)
    # queues are per tenant+extension: one extension alone must queue all Knative admitted beyond its cap
    assert int(env["EXT_QUEUE_SIZE"]) >= cc - cap
    # a waiting request waits for at most one execution per extra slot
    assert int(env["EXT_QUEUE_TIMEOUT_MS"]) >= (cc // workers - 1) * settings.Settings.from_env({}).runner.default_timeout_ms
    assert int(spec["metadata"]["annotations"]["autoscaling.knative.dev/target"]) == workers
    assert env["WEB_CONCURRENCY"] == "1"  # one Gunicorn process, one pool
    assert spec["spec"]["timeoutSeconds"] > 30  # Alga's gateway gives up after 30 s; we must not first


def test_deployment_sizing_and_drain_line_up():
    deployment = kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(container)
    workers = int(env["EXT_WORKERS"])
    assert workers == cpu_cores(container["resources"]["limits"]["cpu"])
    assert container["resources"]["requests"]["cpu"] == container["resources"]["limits"]["cpu"]
    assert int(env["EXT_QUEUE_SIZE"]) >= 2 * workers and env["WEB_CONCURRENCY"] == "1"
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # SIGTERM comes after preStop; Gunicorn then drains for up to graceful_timeout
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + graceful_timeout() + 5
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == RUNNER_UID
    assert container["securityContext"]["readOnlyRootFilesystem"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/app/tmp-ext", "/app/var", "/tmp"} <= mounts  # every folder the runner writes
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kind("Service")["spec"]["selector"].items() <= labels.items()
    assert kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = kind("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "alga-ext-runner"}
    assert hpa["minReplicas"] >= 2  # the PDB's maxUnavailable 1 then leaves one pod serving


def test_every_variable_the_manifests_set_is_one_the_runner_reads():
    known = {"WEB_CONCURRENCY"}  # Gunicorn's (gunicorn.conf.py)
    names = set(kind("ConfigMap")["data"]) | set(kind("Secret")["stringData"])
    names |= set(env_of(kind("Deployment")["spec"]["template"]["spec"]["containers"][0]))
    names |= set(env_of(yaml.safe_load(KNATIVE.read_text())["spec"]["template"]["spec"]["containers"][0]))
    names |= set(yaml.safe_load(COMPOSE.read_text())["services"]["runner"]["environment"])
    assert names - known - settings.known_names() == set()
    assert "RUNNER_SERVICE_TOKEN" not in names  # README "Deploy": it would lock out Alga's gateway
