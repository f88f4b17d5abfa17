"""Executor benchmark (`make bench`): measured side by side in one run, never asserted.

For the WAT and the SDK components:
  (i)   the in-process floor: fresh Store + instantiate + call, component already loaded;
  (ii)  POST /v1/execute over HTTP through Gunicorn (gevent, EXT_WORKERS=2) with wrk,
        at concurrency 1 and 8 (one extension, allowed both workers);
  (iii) the reference design's cost: compile from bytes on every request (sampled).
Also: the CPU each process spends per request (from /proc, robust on a noisy machine), the
service's CPU while idle, where the SDK floor goes (instantiate vs the call) with and without
copy-on-write memory images, cold start of a fresh worker from a precompiled artifact vs a
compile, and worker RSS. Prints markdown tables; figures are ratios of numbers taken in this
same run, never asserted. ``main`` returns the figures for run.py's target table.
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

from common import GUNICORN, ROOT, children, cpu_seconds, service_env, stop, wait_ok, wrk

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

        handler = self.component.get_export_index("handler")  # the worker looks it up once per component

        def once(comp, split: list | None = None) -> float:
            t = time.perf_counter()
            ctx = CallContext(host=host, ids=job.ids, grants=job.grants)
            store = wasmtime.Store(self.engine, data=ctx)
            store.set_epoch_deadline(1 << 30)
            t_inst = time.perf_counter()
            inst = linker.instantiate(store, comp)
            t_call = time.perf_counter()
            index = handler if comp is self.component else comp.get_export_index("handler")
            inst.get_func(store, index)(store, _request_record(job))
            t_drop = time.perf_counter()
            store.close()
            end = time.perf_counter()
            if split is not None:
                split.append((t_call - t_inst, t_drop - t_call, end - t_drop))
            return (end - t) * 1000

        self.once = once
        self.samples: list[float] = []
        self.split: list[tuple[float, float, float]] = []
        for _ in range(5):
            once(self.component)

    def sample(self, n: int) -> None:
        self.samples += [self.once(self.component, self.split) for _ in range(n)]

    def result(self) -> dict:
        times = sorted(self.samples)
        compile_times = []
        for _ in range(3 if len(self.wasm) > 100_000 else 20):
            t = time.perf_counter()
            self.once(self.Component(self.engine, self.wasm))
            compile_times.append((time.perf_counter() - t) * 1000)
        split = {part: statistics.median(x[i] for x in self.split) * 1000
                 for i, part in enumerate(("instantiate", "call", "drop"))}
        return {"p50": _pct(times, 50), "p99": _pct(times, 99), "rps": 1000 / statistics.mean(times),
                "compile_p50": statistics.median(compile_times), "split": split}


def _pct(sorted_ms: list[float], p: int) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * p / 100))]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


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


COW_CODE = """
import sys, time, statistics, wasmtime
sys.path.insert(0, {root!r})
from wasmtime.component import Component
from runner.artifacts import ENGINE_FLAGS
from runner.worker.linker import build_linker
config = wasmtime.Config()
for name, value in ENGINE_FLAGS.items():
    setattr(config, name, value)
config.memory_init_cow = {cow}
engine = wasmtime.Engine(config)
linker = build_linker(engine)
component = Component.from_file(engine, {wasm!r}) if {compile_it} else Component.deserialize_file(engine, {artifact!r})
ts = []
for _ in range(30):
    store = wasmtime.Store(engine); store.set_epoch_deadline(1 << 30)
    t = time.perf_counter(); linker.instantiate(store, component); ts.append((time.perf_counter() - t) * 1000)
    store.close()
print(statistics.median(ts[5:]))
"""


def cow_images(cache: Path, digest: str) -> dict:
    """Instantiating the SDK component with copy-on-write memory images (wasmtime's default, used
    with artifacts mapped from a file) and without them (needs its own compile: the setting is
    part of the artifact)."""
    from runner.artifacts import artifact_path
    artifact, wasm = artifact_path(cache / digest / "compiled", False), cache / digest / "bundle" / "dist" / "main.wasm"

    def run(cow: bool) -> float:
        code = COW_CODE.format(root=str(ROOT), cow=cow, compile_it=not cow, wasm=str(wasm), artifact=str(artifact))
        return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout.strip())
    return {"cow_ms": run(True), "copy_ms": run(False)}


def idle_cpu(pids: dict[str, list[int]], seconds: float = 10.0) -> dict[str, float]:
    """Percent of one CPU each group of processes uses while no request comes."""
    time.sleep(1)  # past the workers' spin after the last request
    before = {name: sum(map(cpu_seconds, group)) for name, group in pids.items()}
    time.sleep(seconds)
    return {name: (sum(map(cpu_seconds, group)) - before[name]) / seconds * 100 for name, group in pids.items()}


def main() -> dict:
    seconds = int(os.environ.get("BENCH_SECONDS", "8"))
    work = Path(tempfile.mkdtemp(prefix="exec-bench-"))
    cache = work / "cache"
    wasms = guests()
    digests = {name: publish(work / "bundles", TENANT, EXT, {"dist/main.wasm": w}) for name, w in wasms.items()}
    routes = {"wat": "/echo", "sdk": "/all"}
    server, url = start_service(work)
    headers = {"x-alga-tenant": TENANT, "x-alga-extension": EXT}
    try:
        (front,) = children(server.pid, "gunicorn")
        rows = []
        for name, wasm in wasms.items():
            body = execute_body(digests[name], path=routes[name], body=b"{}", tenant=TENANT, extension=EXT)
            warm(url, body, headers)
            pids = {"gunicorn": [front], "workers": children(front, "runner.worker")}
            floor, n = Floor(wasm, routes[name]), (100 if name == "sdk" else 700)
            floor.sample(n)
            c1 = wrk(url, 1, seconds, headers, post_json=body, cpu_of=pids)
            floor.sample(n)
            c8 = wrk(url, 8, seconds, headers, post_json=body, cpu_of=pids)
            floor.sample(n)
            rows.append((name, floor.result(), c1, c8))
        idle = idle_cpu({"gunicorn": [front], "workers": children(front, "runner.worker")})
        rss = [rss_mib(p) for p in children(front, "runner.worker")]
        cold = cold_start(cache, digests["sdk"])
        cow = cow_images(cache, digests["sdk"])
        lists = byte_lists()
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)
    print(_table(rows, idle, rss, cold, cow, lists))
    figures = {}
    for name, f, c1, c8 in rows:
        figures[name] = {"floor_p50": f["p50"], "c1_p50": c1["p50"], "floor_rps": f["rps"], "c8_rps": c8["rps"]}
    return figures


def start_service(work: Path) -> tuple[subprocess.Popen, str]:
    """The service under Gunicorn (gunicorn.conf.py, EXT_WORKERS=2) on ``work``; (process, execute URL).
    One extension may use both workers: these figures measure the pool, not the fairness cap."""
    port = free_port()
    server = subprocess.Popen([GUNICORN, "-c", "gunicorn.conf.py", "app:create_app()"], cwd=ROOT,
                              env=service_env(work, EXT_WORKERS="2", PORT=str(port), EXT_MAX_WORKERS_PER_EXTENSION="2"),
                              stderr=subprocess.DEVNULL)
    wait_ok(f"http://127.0.0.1:{port}/livez", server, "gunicorn")
    return server, f"http://127.0.0.1:{port}/v1/execute"


def warm(url: str, body: dict, headers: dict) -> None:
    import requests
    for _ in range(6):  # compile once, then load on both workers
        r = requests.post(url, json=body, headers=headers, timeout=300).json()
        assert r["error"] is None, r


def _table(rows, idle, rss, cold, cow, lists) -> str:
    lines = ["| component | floor p50 / p99 ms (i) | HTTP c=1 p50 / p99 ms (ii) | (ii)-(i) p50 ms | (ii)/(i) p50 | "
             "floor req/s | HTTP c=8 req/s (2 workers) | c=8 / floor req/s | compile-per-request p50 ms (iii) | "
             "(iii)/(ii) p50 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, f, c1, c8 in rows:
        lines.append(f"| {name} | {f['p50']:.2f} / {f['p99']:.2f} | {c1['p50']:.2f} / {c1['p99']:.2f} | "
                     f"{c1['p50'] - f['p50']:.2f} | {c1['p50'] / f['p50']:.2f}x | {f['rps']:.0f} | "
                     f"{c8['rps']:.0f} | {c8['rps'] / f['rps']:.2f}x | "
                     f"{f['compile_p50']:.1f} | {f['compile_p50'] / c1['p50']:.0f}x |")
    lines += ["", "CPU per request (µs, from /proc) and where the floor goes:", "",
              "| component | Gunicorn process c=1 / c=8 | workers c=1 / c=8 | floor: instantiate / call / drop ms |",
              "|---|---|---|---|"]
    for name, f, c1, c8 in rows:
        split = f["split"]
        lines.append(f"| {name} | {c1['cpu_us']['gunicorn']:.0f} / {c8['cpu_us']['gunicorn']:.0f} | "
                     f"{c1['cpu_us']['workers']:.0f} / {c8['cpu_us']['workers']:.0f} | "
                     f"{split['instantiate']:.3f} / {split['call']:.2f} / {split['drop']:.3f} |")
    lines.append("")
    lines.append(f"Idle (no requests for 10 s): Gunicorn process {idle['gunicorn']:.2f}% of a CPU, "
                 f"workers {idle['workers']:.2f}%.")
    lines.append(f"SDK instantiate with copy-on-write memory images (default, artifact mapped from its file) "
                 f"{cow['cow_ms']:.3f} ms; without them (memory_init_cow off, own compile) {cow['copy_ms']:.3f} ms.")
    lines.append(f"Fresh worker, SDK component: load precompiled artifact {cold['load_ms']:.2f} ms vs compile "
                 f"{cold['compile_ms']:.0f} ms ({cold['compile_ms'] / cold['load_ms']:.0f}x). "
                 f"Worker RSS with both components loaded: {', '.join(f'{r:.0f} MiB' for r in rss)}.")
    lines.append(f"list<u8>, 1 MiB echoed (host->guest->host): stock wasmtime-py {lists['stock_ms']:.0f} ms, "
                 f"runner.wasm_compat {lists['fast_ms']:.0f} ms ({lists['stock_ms'] / lists['fast_ms']:.1f}x).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
