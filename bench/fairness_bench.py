"""Fairness benchmark (`make bench`): figures side by side in one run, never asserted.

Tenant B sends light requests (the WAT component's /echo, one connection) while
tenant A floods 20 concurrent /loop requests that each run to their 500 ms timeout, on
Gunicorn with EXT_WORKERS=2. B's p99 with the flood divided by B's p99 without it, for
the default cap (EXT_MAX_WORKERS_PER_EXTENSION = workers - 1) and with the cap lifted to
every worker (round-robin queueing alone). B alone and B flooded alternate in rounds and
each side's samples are pooled, so a noisy minute on this shared machine falls on both.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import requests
from common import GUNICORN, ROOT, service_env, stop, wait_ok

from helpers import GUESTS, execute_body, free_port, publish

FLOOD_CONNECTIONS = 20
FLOOD_TIMEOUT_MS = 500
ROUNDS = 3
A, B = ("tenant-a", "ext-a"), ("tenant-b", "ext-b")


class Flood:
    """``FLOOD_CONNECTIONS`` threads sending A's /loop requests back to back while ``on`` is set."""

    def __init__(self, url: str, digest: str):
        self.url, self.on, self.stopped = url, threading.Event(), threading.Event()
        self.body = execute_body(digest, path="/loop", tenant=A[0], extension=A[1],
                                 limits={"timeout_ms": FLOOD_TIMEOUT_MS})
        self.answers: dict[str, int] = {}
        self.in_flight = 0
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(FLOOD_CONNECTIONS)]
        for t in self.threads:
            t.start()

    def pause(self) -> None:
        """Stop sending and wait until A's requests already queued have been answered."""
        self.on.clear()
        while self.in_flight:
            time.sleep(0.05)

    def close(self) -> None:
        self.stopped.set()
        self.on.set()
        for t in self.threads:
            t.join(60)

    def _run(self) -> None:
        with requests.Session() as s:
            while self.on.wait() and not self.stopped.is_set():
                with self._lock:
                    self.in_flight += 1
                try:
                    r = s.post(self.url, json=self.body, timeout=60,
                               headers={"x-alga-tenant": A[0], "x-alga-extension": A[1]})
                finally:
                    with self._lock:
                        self.in_flight -= 1
                error = r.json().get("error") or "" if r.status_code == 200 else ""
                outcome = "timeout" if error.startswith("execute_failed: timeout") else str(r.status_code)
                with self._lock:
                    self.answers[outcome] = self.answers.get(outcome, 0) + 1


def light_load(port: int, body: bytes, seconds: float) -> list[float]:
    """B's requests back to back on one keep-alive connection: their latencies in ms."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"content-type": "application/json", "x-alga-tenant": B[0], "x-alga-extension": B[1]}
    times, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        conn.request("POST", "/v1/execute", body, headers)
        answer = conn.getresponse().read()
        times.append((time.perf_counter() - started) * 1000)
        assert b'"error":null' in answer, answer[:200]
    conn.close()
    return times


def measure(work: Path, digests: dict, seconds: int, cap: str | None) -> dict:
    """B alone and B with the flood, in alternating rounds (this machine's noise falls on both)."""
    port = free_port()
    extra = {"EXT_WORKERS": "2", "PORT": str(port)}
    if cap is not None:
        extra["EXT_MAX_WORKERS_PER_EXTENSION"] = cap
    server = subprocess.Popen([GUNICORN, "-c", "gunicorn.conf.py", "app:create_app()"], cwd=ROOT,
                              env=service_env(work, **extra), stderr=subprocess.DEVNULL)
    light = json.dumps(execute_body(digests[B], path="/echo", body=b"{}", tenant=B[0], extension=B[1])).encode()
    alone: list[float] = []
    flooded: list[float] = []
    try:
        wait_ok(f"http://127.0.0.1:{port}/livez", server, "gunicorn")
        light_load(port, light, 2)  # compile once, load on both workers
        flood = Flood(f"http://127.0.0.1:{port}/v1/execute", digests[A])
        try:
            for _ in range(ROUNDS):
                alone += light_load(port, light, seconds / ROUNDS)
                flood.on.set()
                time.sleep(0.5)  # A's queue fills
                flooded += light_load(port, light, seconds / ROUNDS)
                flood.pause()
        finally:
            flood.close()
    finally:
        stop(server)
    return {"alone": _stats(alone), "flooded": _stats(flooded), "flood": flood.answers}


def _stats(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"p50": ms[len(ms) // 2], "p99": ms[min(len(ms) - 1, len(ms) * 99 // 100)], "n": len(ms)}


def main() -> None:
    seconds = int(os.environ.get("BENCH_SECONDS", "8"))
    work = Path(tempfile.mkdtemp(prefix="fair-bench-"))
    import wasmtime
    wasm = bytes(wasmtime.wat2wasm((GUESTS / "mini.component.wat").read_text()))
    digests = {owner: publish(work / "bundles", *owner, {"dist/main.wasm": wasm}) for owner in (A, B)}
    try:
        rows = [("default (workers - 1 = 1)", measure(work, digests, seconds, None)),
                ("lifted (2 = every worker)", measure(work, digests, seconds, "2"))]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [f"Tenant B: /echo at 1 connection; tenant A: {FLOOD_CONNECTIONS} connections of /loop to a "
             f"{FLOOD_TIMEOUT_MS} ms timeout; EXT_WORKERS=2.", "",
             "| EXT_MAX_WORKERS_PER_EXTENSION | B alone p50 / p99 ms | B with the flood p50 / p99 ms | "
             "p99 ratio | B requests alone / flooded | A's answers during the flood |", "|---|---|---|---|---|---|"]
    for name, r in rows:
        a, f = r["alone"], r["flooded"]
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(r["flood"].items()))
        lines.append(f"| {name} | {a['p50']:.2f} / {a['p99']:.2f} | {f['p50']:.2f} / {f['p99']:.2f} | "
                     f"{f['p99'] / a['p99']:.1f}x | {a['n']} / {f['n']} | {answers} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
