"""Running the runner image in tests: podman with this project's configuration (deploy/podman-env.sh).

Containers always share the host's network namespace (``--network host``, never ``-p``): test
traffic stays on 127.0.0.1, and each container gets its own free ``PORT`` instead of a mapping.
Every container is named by the test that starts it and removed by name afterwards.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from helpers import ROOT

PODMAN_ENV = ROOT / "deploy" / "podman-env.sh"
IMAGE_SH = ROOT / "deploy" / "image.sh"
TEST_IMAGE = os.environ.get("ALGA_TEST_IMAGE", "localhost/alga-ext-runner:test")
RUNNER_UID = 10001


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(PODMAN_ENV), "podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def require_podman() -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (make system-deps installs it)")


def build_image(tag: str = TEST_IMAGE) -> float:
    """Build the Containerfile as `make image` does (cached base, cached layers); returns seconds."""
    require_podman()
    started = time.monotonic()
    done = subprocess.run([str(IMAGE_SH), "build", tag], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "CONTAINER_ENGINE": "podman"})
    assert done.returncode == 0, "image build failed:\n" + (done.stdout + done.stderr)[-4000:]
    return time.monotonic() - started


def writable_by_runner(path: Path) -> Path:
    """A host folder the image's non-root user can write (what a volume is for it)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, RUNNER_UID, RUNNER_UID)
    return path


class Container:
    """One ``podman run -d --network host`` of ``image``; the service answers on 127.0.0.1:``port``."""

    def __init__(self, image: str, port: int, env: dict[str, str] | None = None,
                 volumes: list[str] = (), env_file: Path | None = None, extra: list[str] = ()):
        self.image, self.port = image, port
        self.name = f"alga-runner-test-{uuid.uuid4().hex[:10]}"
        self.args = ["--network", "host", "--name", self.name]
        if env_file is not None:
            self.args += ["--env-file", str(env_file)]
        for key, value in (env or {}).items():
            self.args += ["-e", f"{key}={value}"]
        for volume in volumes:
            self.args += ["-v", volume]
        self.args += list(extra)
        self.base = f"http://127.0.0.1:{port}"
        self.started_at = 0.0

    def start(self, wait: bool = True, timeout: float = 120) -> "Container":
        self.started_at = time.monotonic()
        podman("run", "-d", *self.args, self.image)
        if wait:
            self.wait_live(timeout)
        return self

    def wait_live(self, timeout: float = 120) -> float:
        """Seconds from start until /livez answered 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/livez", timeout=2).ok:
                    return time.monotonic() - self.started_at
            except requests.RequestException:
                pass
            if self.state() not in ("running", "created", "configured", "initialized"):
                break
            time.sleep(0.2)
        pytest.fail(f"container {self.name} never answered /livez (state {self.state()}):\n{self.logs()[-4000:]}")

    def state(self) -> str:
        return podman("inspect", "--format", "{{.State.Status}}", self.name, check=False).stdout.strip()

    def exit_code(self) -> int:
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip())

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def signal(self, sig: str = "TERM") -> None:
        podman("kill", "--signal", sig, self.name)

    def wait_exit(self, timeout: float = 60) -> int:
        podman("wait", self.name, timeout=timeout)
        return self.exit_code()

    def stop(self, grace_s: int = 40) -> int:
        podman("stop", "-t", str(grace_s), self.name, timeout=grace_s + 30)
        return self.exit_code()

    def remove(self) -> None:
        podman("rm", "-f", "-t", "0", self.name, check=False)
