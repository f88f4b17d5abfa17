"""Shared pieces of the benchmarks: wrk runs, waiting for servers, stopping them."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
GUNICORN = str(ROOT / ".venv/bin/gunicorn")


def service_env(work: Path, **extra: str) -> dict[str, str]:
    """Environment for this service on temporary folders, quiet logs, no samples."""
    return {**os.environ, "BUNDLE_STORE_BASE": str(work / "bundles"), "EXT_CACHE_ROOT": str(work / "cache"),
            "EXT_REGISTRY_DB": str(work / "registry.db"), "EXT_SECRETS_KEY_FILE": str(work / "secrets.key"),
            "LOG_LEVEL": "warning", "EXT_INSTALL_SAMPLES": "false", **extra}


def wrk(url: str, connections: int, seconds: int, headers: dict[str, str] | None = None,
        post_json: dict | None = None, cpu_of: dict[str, list[int]] | None = None) -> dict:
    """req/s, p50, p99 (ms) and non-2xx count of a wrk run with keep-alive; with ``cpu_of``
    ({name: pids}), also the CPU microseconds each group of processes spent per request."""
    cmd = ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    script = None
    if post_json is not None:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(post_json))}\n'
                     'wrk.headers["content-type"] = "application/json"\n')
        script.close()
        cmd += ["-s", script.name]
    before = {name: sum(map(cpu_seconds, pids)) for name, pids in (cpu_of or {}).items()}
    try:
        out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    finally:
        if script is not None:
            os.unlink(script.name)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    cpu_us = {name: (sum(map(cpu_seconds, pids)) - before[name]) / max(1, requests_done) * 1e6
              for name, pids in (cpu_of or {}).items()}
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "cpu_us": cpu_us,
            "p50": _ms(out, "50%"), "p99": _ms(out, "99%"), "errors": int(errors.group(1)) if errors else 0}


def _ms(out: str, label: str) -> float:
    value, unit = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)\b", out).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children(pid: int, marker: str = "") -> list[int]:
    """Direct child processes of ``pid`` whose command line contains ``marker``."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()[1:]
            if int(line.split()[1]) == pid and marker in line]


def wait_ok(url: str, process: subprocess.Popen, what: str, headers: dict[str, str] | None = None) -> None:
    import requests

    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            if requests.get(url, headers=headers, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer 200 for {url}")


def stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
