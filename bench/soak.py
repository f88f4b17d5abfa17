"""`make soak` (not part of `make test`): mixed /v1/execute and /ext-ui load at saturation for
SOAK_SECONDS (default 600), with one worker process killed at 1/3 and a bundle store outage from
1/2 for 1/10 of the run. Prints the requests, what was lost, p50/p99 per window and the RSS of
every process at the start and the end.

The store is plain HTTP (``python -m http.server`` over a folder, the reference's unauthenticated
fallback) so the outage is a process stopped and started again. During the outage only bundles
never fetched before can fail (``bundle_fetch_failed``, expected); cached ones keep serving. A
response is *lost* when the connection fails or the answer is not one the contract allows; the
request in flight on the killed worker is counted on its own.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from common import GUNICORN, ROOT, service_env, stop, wait_ok

from helpers import GUESTS, execute_body, free_port, publish

CONNECTIONS = 16
TENANTS = [(f"tenant-{i}", f"ext-{i}") for i in range(4)]
WINDOWS = 20
UI = {"ui/index.html": b"<!doctype html><script src=app.js></script>", "ui/app.js": b"console.log(1);" * 500,
      "ui/style.css": b"p{color:red}"}


class Load:
    """CONNECTIONS threads, each on its own keep-alive connection, recording every request."""

    def __init__(self, port: int, warm: dict, cold: list):
        self.port, self.warm, self.cold = port, warm, cold
        self.cold_now: list = []  # cold bundles requested from now on (set by the timeline)
        self.stop = threading.Event()
        self.records: list[tuple[float, float, str, str]] = []  # (start, ms, kind, outcome)
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(CONNECTIONS)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def _run(self, n: int) -> None:
        rng = random.Random(n)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self.stop.is_set():
            kind, method, path, body, headers, check = self._request(rng)
            started = time.monotonic()
            try:
                conn.request(method, path, body, headers)
                answer = conn.getresponse()
                outcome = check(answer.status, answer.read())
            except (OSError, http.client.HTTPException) as e:
                outcome = f"lost: {type(e).__name__}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.records.append((started - self.started, (time.monotonic() - started) * 1000, kind, outcome))

    def _request(self, rng: random.Random):
        roll = rng.random()
        if self.cold_now and roll < 0.02:
            owner, digest = rng.choice(self.cold_now)
            return ("execute",) + _execute(owner, digest, "/echo", 5000)
        owner = rng.choice(TENANTS)
        digest = self.warm[owner]
        if roll < 0.65:
            return ("execute",) + _execute(owner, digest, "/echo", 5000)
        if roll < 0.70:
            return ("execute",) + _execute(owner, digest, "/loop", 50)
        asset = rng.choice(["index.html", "app.js", "style.css", "missing.js"])
        headers = {"If-None-Match": f'"sha256-{digest}"'} if rng.random() < 0.2 else {}
        return ("ext-ui", "GET", f"/ext-ui/{owner[1]}/sha256:{digest}/{asset}?tenant={owner[0]}", None, headers,
                _check_ui)


def _execute(owner, digest, path, timeout_ms):
    body = json.dumps(execute_body(digest, path=path, body=b"{}", tenant=owner[0], extension=owner[1],
                                   limits={"timeout_ms": timeout_ms})).encode()
    headers = {"content-type": "application/json", "x-alga-tenant": owner[0], "x-alga-extension": owner[1]}
    return "POST", "/v1/execute", body, headers, _check_execute


def _check_execute(status: int, data: bytes) -> str:
    if status == 503:
        return "busy (503)"
    if status != 200:
        return f"lost: HTTP {status}"
    error = json.loads(data)["error"]
    if error is None:
        return "ok"
    if error.startswith("execute_failed: timeout"):
        return "ok (timeout asked for)"
    if "worker process died" in error:
        return "in flight on the killed worker"
    if error.startswith("bundle_fetch_failed"):
        return "bundle_fetch_failed (store down)"
    return f"lost: {error[:60]}"


def _check_ui(status: int, data: bytes) -> str:
    if status in (200, 304, 404):  # 404: missing.js, as it should
        return "ok"
    return f"lost: HTTP {status} {data[:40]!r}"


def tree(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout.split()[2:]
    children: dict[int, list[int]] = {}
    for child, parent in zip(out[::2], out[1::2]):
        children.setdefault(int(parent), []).append(int(child))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def rss(pids: list[int]) -> dict[str, float]:
    out = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        name = ("runner worker" if "runner.worker" in cmd else "http store" if "http.server" in cmd
                else "soak client" if pid == os.getpid() else "gunicorn master" if "gunicorn" in cmd and
                pid == pids[0] else "gunicorn worker")
        out[f"{name} {pid}"] = kb / 1024
    return out


def start_store(folder: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(folder),
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def timeline(load: Load, seconds: float, gunicorn: subprocess.Popen, store_holder: list, folder: Path,
             store_port: int, cold: list, events: list) -> None:
    def at(t: float) -> None:
        time.sleep(max(0.0, t - (time.monotonic() - load.started)))

    at(seconds / 3)
    workers = [p for p in tree(gunicorn.pid) if b"runner.worker" in Path(f"/proc/{p}/cmdline").read_bytes()]
    os.kill(workers[0], signal.SIGKILL)
    events.append(f"{seconds / 3:.0f} s: SIGKILL worker {workers[0]}")
    at(seconds / 2)
    stop(store_holder[0])
    events.append(f"{seconds / 2:.0f} s: bundle store stopped; requests for {len(cold)} never-fetched bundles start")
    load.cold_now = cold
    at(seconds * 0.6)
    store_holder[0] = start_store(folder, store_port)
    events.append(f"{seconds * 0.6:.0f} s: bundle store back")


def main() -> None:
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    import wasmtime
    wasm = bytes(wasmtime.wat2wasm((GUESTS / "mini.component.wat").read_text()))
    warm = {o: publish(work / "bundles", *o, {"dist/main.wasm": wasm, **UI}) for o in TENANTS}
    cold = [(o, publish(work / "bundles", *o, {"dist/main.wasm": wasm, **UI, "ui/n.js": b"%d" % i}))
            for i, o in enumerate(TENANTS)]
    store_port, port = free_port(), free_port()
    store = [start_store(work / "bundles", store_port)]
    env = service_env(work, EXT_WORKERS="2", PORT=str(port), BUNDLE_STORE_BASE=f"http://127.0.0.1:{store_port}",
                      EXT_STATIC_STRICT_VALIDATION="false", EXT_BUNDLE_FETCH_TIMEOUT_MS="2000")
    server = subprocess.Popen([GUNICORN, "-c", "gunicorn.conf.py", "app:create_app()"], cwd=ROOT, env=env,
                              stderr=subprocess.DEVNULL)
    events: list[str] = []
    try:
        wait_ok(f"http://127.0.0.1:{port}/readyz", server, "gunicorn")
        load = Load(port, warm, cold)
        for owner, digest in warm.items():  # fetched, compiled, loaded before the clock starts
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            method, path, body, headers, check = _execute(owner, digest, "/echo", 5000)
            conn.request(method, path, body, headers)
            answer = conn.getresponse()
            assert check(answer.status, answer.read()) == "ok"
        before = rss([server.pid, *tree(server.pid)[1:], store[0].pid, os.getpid()])
        load.started = time.monotonic()
        load.start()
        timeline(load, seconds, server, store, work / "bundles", store_port, cold, events)
        time.sleep(max(0.0, seconds - (time.monotonic() - load.started)))
        load.join()
        after = rss([server.pid, *tree(server.pid)[1:], store[0].pid, os.getpid()])
        ready = wait_ready(port)
    finally:
        stop(server)
        stop(store[0])
        shutil.rmtree(work, ignore_errors=True)
    print(report(load.records, seconds, events, before, after, ready))


def wait_ready(port: int) -> str:
    for _ in range(50):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/readyz")
        answer = conn.getresponse()
        if answer.status == 200:
            return answer.read().decode()
        time.sleep(0.2)
    return f"not ready: {answer.status}"


def _pct(values: list[float], p: int) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, len(values) * p // 100)] if values else float("nan")


def report(records, seconds, events, before, after, ready) -> str:
    outcomes = Counter(r[3] for r in records)
    lost = sum(n for o, n in outcomes.items() if o.startswith("lost"))
    lines = [f"Soak: {seconds:.0f} s, {CONNECTIONS} connections, EXT_WORKERS=2, {len(TENANTS)} tenants; "
             f"{len(records)} requests ({len(records) / seconds:.0f}/s); lost: {lost}", ""]
    lines += [f"- {e}" for e in events] + [""]
    lines += ["| outcome | count |", "|---|---|"] + [f"| {o} | {n} |" for o, n in outcomes.most_common()] + [""]
    lines += ["| window (s) | execute req | execute p50 / p99 ms | ext-ui req | ext-ui p50 / p99 ms | not ok |",
              "|---|---|---|---|---|---|"]
    width = seconds / WINDOWS
    for w in range(WINDOWS):
        rows = [r for r in records if w * width <= r[0] < (w + 1) * width]
        ex = [r[1] for r in rows if r[2] == "execute"]
        ui = [r[1] for r in rows if r[2] == "ext-ui"]
        bad = sum(1 for r in rows if not r[3].startswith("ok"))
        lines.append(f"| {w * width:.0f}-{(w + 1) * width:.0f} | {len(ex)} | {_pct(ex, 50):.1f} / {_pct(ex, 99):.1f} "
                     f"| {len(ui)} | {_pct(ui, 50):.1f} / {_pct(ui, 99):.1f} | {bad} |")
    lines += ["", "| process | RSS at start MiB | RSS at end MiB |", "|---|---|---|"]
    for name in sorted(set(before) | set(after)):
        lines.append(f"| {name} | {before.get(name, float('nan')):.0f} | {after.get(name, float('nan')):.0f} |")
    lines += ["", f"/readyz after the run: {ready}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
