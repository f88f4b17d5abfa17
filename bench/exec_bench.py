"""Executor benchmark (`make bench`): measured side by side in one run, never asserted.

For the WAT and the SDK components:
  (i)   the in-process floor: fresh Store + instantiate + call, component already loaded;
  (ii)  POST /v1/execute over HTTP through Gunicorn (gevent, EXT_WORKERS=2) with wrk,
        at concurrency 1 and 8;
  (iii) the reference design's cost: compile from bytes on every request (sampled).
Also: cold start of a fresh worker from a precompiled artifact vs a compile, and worker RSS.
Prints a markdown table; figures are ratios of numbers taken in this same run.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import GUNICORN, ROOT, service_env, stop, wait_ok, wrk

from helpers import GUESTS, execute_body, free_port, publish

TENANT, EXT = "bench-tenant", "bench-ext"


def guests() -> dict[str, bytes]:
    import wasmtime
    return {"wat": bytes(wasmtime.wat2wasm((GUESTS / "mini.component.wat").read_text())),
            "sdk": (GUESTS / "sdk.wasm").read_bytes()}


class Floor:
    """(i) and (iii) in this process, with the worker's own engine, linker and request record.

    The floor is sampled in rounds around the HTTP runs and the rounds' samples are
    pooled, so a noisy minute on this shared machine does not decide a ratio alone.
    """

    def __init__(self, wasm: bytes, path: str):
        import wasmtime
        from runner.messages import ExecutionIds, GuestRequest, Job, WorkerConfig
        from runner.policy.capabilities import grants
        from runner.worker import wasm_compat
        from runner.worker.engine import make_engine
        from runner.worker.host.call import CallContext, HostState
        from runner.worker.linker import build_linker
        from runner.worker.runtime import _request_record
        from settings import Settings
        from wasmtime.component import Component

        wasm_compat.install()
        self.wasm, self.Component = wasm, Component
        settings = Settings.from_env({})
        host = HostState.build(WorkerConfig(settings.runner, settings.alga, settings.registry, "warning"))
        self.engine = make_engine(False)
        linker = build_linker(self.engine)
        self.component = Component(self.engine, wasm)
        job = Job(id=1, bundle="b", artifact="", timeout_ms=5000, memory_mb=256, fuel=None,
                  ids=ExecutionIds(TENANT, EXT, None, "r"), grants=grants([]), secrets=None, user=None,
                  request=GuestRequest("POST", path, [("content-type", "application/json")], b"{}"))

        def once(comp) -> float:
            t = time.perf_counter()
            ctx = CallContext(host=host, ids=job.ids, grants=job.grants)
            store = wasmtime.Store(self.engine, data=ctx)
            store.set_epoch_deadline(1 << 30)
            inst = linker.instantiate(store, comp)
            inst.get_func(store, "handler")(store, _request_record(job))
            store.close()
            return (time.perf_counter() - t) * 1000

        self.once = once
        self.samples: list[float] = []
        for _ in range(5):
            once(self.component)

    def sample(self, n: int) -> None:
        self.samples += [self.once(self.component) for _ in range(n)]

    def result(self) -> dict:
        times = sorted(self.samples)
        compile_times = []
        for _ in range(3 if len(self.wasm) > 100_000 else 20):
            t = time.perf_counter()
            self.once(self.Component(self.engine, self.wasm))
            compile_times.append((time.perf_counter() - t) * 1000)
        return {"p50": _pct(times, 50), "p99": _pct(times, 99), "rps": 1000 / statistics.mean(times),
                "compile_p50": statistics.median(compile_times)}


def _pct(sorted_ms: list[float], p: int) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * p / 100))]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_pids(gunicorn_pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
    children = {int(l.split()[0]) for l in out.splitlines()[1:] if int(l.split()[1]) == gunicorn_pid}
    return [int(l.split()[0]) for l in out.splitlines()[1:]
            if int(l.split()[1]) in children and "runner.worker" in l]


def cold_start(cache: Path, digest: str) -> dict:
    """A fresh worker process: load from the precompiled artifact vs compile in place."""
    from runner.artifacts import artifact_path
    artifact = artifact_path(cache / digest / "compiled", False)
    wasm = cache / digest / "bundle" / "dist" / "main.wasm"
    code = ("import time,sys;import wasmtime;from runner.worker.engine import make_engine,load_artifact;"
            "from wasmtime.component import Component;from pathlib import Path;e=make_engine(False);"
            "t=time.perf_counter();{load};print((time.perf_counter()-t)*1000)")
    load = code.format(load=f"load_artifact(e, Path({str(artifact)!r}))")
    comp = code.format(load=f"Component.from_file(e, {str(wasm)!r})")
    run = lambda c: float(subprocess.run([sys.executable, "-c", c], cwd=ROOT, capture_output=True, text=True,
                                         check=True).stdout.strip())
    return {"load_ms": statistics.median(run(load) for _ in range(5)), "compile_ms": run(comp)}


BYTES_CODE = """
import sys, time, statistics, wasmtime
from wasmtime.component import Component
sys.path.insert(0, {root!r})
from runner.messages import ExecutionIds, GuestRequest, Job, WorkerConfig
from runner.worker import wasm_compat
from runner.worker.engine import make_engine
from runner.worker.host.call import CallContext, HostState
from runner.worker.linker import build_linker
from runner.worker.runtime import _request_record
from settings import Settings
if {patched}:
    wasm_compat.install()
else:  # stock list<u8> conversion; keep only the result-arm fix our host functions rely on
    from wasmtime.component import _types
    _types.VariantLikeType._lower = wasm_compat._lower
settings = Settings.from_env({{}})
host = HostState.build(WorkerConfig(settings.runner, settings.alga, settings.registry, "warning"))
engine = make_engine(False); linker = build_linker(engine)
comp = Component(engine, bytes(wasmtime.wat2wasm(open({wat!r}).read())))
body = bytes(range(256)) * 4096
job = Job(id=1, bundle="b", artifact="", timeout_ms=5000, memory_mb=256, fuel=None, ids=ExecutionIds("t", "e"),
          request=GuestRequest("POST", "/echo", [], body), grants=frozenset(), secrets=None, user=None)
ts = []
for _ in range(5):
    store = wasmtime.Store(engine, data=CallContext(host=host, ids=job.ids)); store.set_epoch_deadline(1 << 30)
    t = time.perf_counter()
    out = linker.instantiate(store, comp).get_func(store, "handler")(store, _request_record(job))
    ts.append((time.perf_counter() - t) * 1000)
    assert out.body == body
print(statistics.median(ts))
"""


def byte_lists() -> dict:
    """list<u8> both ways: 1 MiB echoed through the WAT guest, stock wasmtime-py vs wasm_compat."""
    def run(patched: bool) -> float:
        code = BYTES_CODE.format(root=str(ROOT), patched=patched, wat=str(GUESTS / "mini.component.wat"))
        return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout.strip())
    return {"stock_ms": run(False), "fast_ms": run(True)}


def main() -> None:
    seconds = int(os.environ.get("BENCH_SECONDS", "8"))
    work = Path(tempfile.mkdtemp(prefix="exec-bench-"))
    cache = work / "cache"
    wasms = guests()
    digests = {name: publish(work / "bundles", TENANT, EXT, {"dist/main.wasm": w}) for name, w in wasms.items()}
    routes = {"wat": "/echo", "sdk": "/all"}
    port = free_port()
    server = subprocess.Popen([GUNICORN, "-c", "gunicorn.conf.py", "app:create_app()"], cwd=ROOT,
                              env=service_env(work, EXT_WORKERS="2", PORT=str(port)), stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1/execute"
    headers = {"x-alga-tenant": TENANT, "x-alga-extension": EXT}
    try:
        wait_ok(f"http://127.0.0.1:{port}/livez", server, "gunicorn")
        rows = []
        for name, wasm in wasms.items():
            body = execute_body(digests[name], path=routes[name], body=b"{}", tenant=TENANT, extension=EXT)
            _warm(url, body, headers)
            floor, n = Floor(wasm, routes[name]), (100 if name == "sdk" else 700)
            floor.sample(n)
            c1 = wrk(url, 1, seconds, headers, post_json=body)
            floor.sample(n)
            c8 = wrk(url, 8, seconds, headers, post_json=body)
            floor.sample(n)
            rows.append((name, floor.result(), c1, c8))
        rss = [rss_mib(p) for p in worker_pids(server.pid)]
        cold = cold_start(cache, digests["sdk"])
        lists = byte_lists()
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)
    print(_table(rows, rss, cold, lists))


def _warm(url: str, body: dict, headers: dict) -> None:
    import requests
    for _ in range(6):  # compile once, then load on both workers
        r = requests.post(url, json=body, headers=headers, timeout=300).json()
        assert r["error"] is None, r


def _table(rows, rss, cold, lists) -> str:
    lines = ["| component | floor p50 / p99 ms (i) | HTTP c=1 p50 / p99 ms (ii) | (ii)/(i) p50 | floor req/s | "
             "HTTP c=8 req/s (2 workers) | c=8 / floor req/s | compile-per-request p50 ms (iii) | (iii)/(ii) p50 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, f, c1, c8 in rows:
        lines.append(f"| {name} | {f['p50']:.2f} / {f['p99']:.2f} | "
                     f"{c1['p50']:.2f} / {c1['p99']:.2f} | {c1['p50'] / f['p50']:.2f}x | {f['rps']:.0f} | "
                     f"{c8['rps']:.0f} | {c8['rps'] / f['rps']:.2f}x | "
                     f"{f['compile_p50']:.1f} | {f['compile_p50'] / c1['p50']:.0f}x |")
    lines.append("")
    lines.append(f"Fresh worker, SDK component: load precompiled artifact {cold['load_ms']:.2f} ms vs compile "
                 f"{cold['compile_ms']:.0f} ms ({cold['compile_ms'] / cold['load_ms']:.0f}x). "
                 f"Worker RSS with both components loaded: {', '.join(f'{r:.0f} MiB' for r in rss)}.")
    lines.append(f"list<u8>, 1 MiB echoed (host->guest->host): stock wasmtime-py {lists['stock_ms']:.0f} ms, "
                 f"runner.wasm_compat {lists['fast_ms']:.0f} ms ({lists['stock_ms'] / lists['fast_ms']:.1f}x).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
