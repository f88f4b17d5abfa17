"""Engines, linkers and loaded components of one worker process, and one execution.

One Engine and Linker per fuel setting, an LRU of loaded components and a ticker
thread that advances the epoch every 10 ms while an execution runs (parked in
between, so an idle worker wakes for nothing). Each execution gets a fresh Store
carrying its CallContext, epoch deadline, memory limit and fuel. It never
compiles: a missing or unusable artifact is answered with ``need_compile``.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from wasmtime.component import Component, ExportIndex

from runner.messages import ERROR, NEED_COMPILE, OK, Job, Reply
from runner.worker.engine import load_artifact, make_engine
from runner.worker.host.call import CallContext, HostState
from runner.worker.host.values import record
from runner.worker.linker import HostFunctionError, build_linker

log = logging.getLogger("runner.worker")

TICK_SECONDS = 0.010


class GuestRefused(Exception):
    """The component cannot run here (no ``handler`` export, or it imports wasi:http)."""


@dataclass
class Loaded:
    component: Component
    uses_wasi: bool
    handler: ExportIndex | None  # looked up once, not by name on every call


class Runtime:
    def __init__(self, host: HostState):
        self.host = host
        self.cache_size = host.settings.component_cache_size
        self.engines: dict[bool, tuple[wasmtime.Engine, object]] = {}
        self.components: OrderedDict[tuple[str, bool], Loaded] = OrderedDict()
        self._engine(False)
        self._running = threading.Event()
        threading.Thread(target=self._tick, name="epoch-ticker", daemon=True).start()

    def _engine(self, fuel: bool):
        if fuel not in self.engines:
            engine = make_engine(fuel)
            self.engines[fuel] = (engine, build_linker(engine))
        return self.engines[fuel]

    def _tick(self) -> None:
        while True:
            self._running.wait()
            time.sleep(TICK_SECONDS)
            for engine, _ in list(self.engines.values()):
                engine.increment_epoch()

    def loaded_bundles(self) -> list[str]:
        return [bundle for bundle, _ in self.components]

    def load(self, bundle: str, artifact: Path, fuel: bool) -> Loaded | None:
        """The component from the LRU or its artifact; None when it must be compiled."""
        key = (bundle, fuel)
        if key in self.components:
            self.components.move_to_end(key)
            return self.components[key]
        engine, _ = self._engine(fuel)
        try:
            component = load_artifact(engine, artifact)
        except FileNotFoundError:
            return None
        except wasmtime.WasmtimeError as e:
            log.warning("discarding unusable artifact %s: %s", artifact, last_line(e))
            artifact.unlink(missing_ok=True)
            return None
        imports = component.type.imports(engine)
        if any(name.startswith("wasi:http") for name in imports):
            raise GuestRefused("component imports wasi:http, which this runner never links")
        loaded = Loaded(component, uses_wasi=any(name.startswith("wasi:") for name in imports),
                        handler=component.get_export_index("handler"))
        self.components[key] = loaded
        while len(self.components) > self.cache_size:
            self.components.popitem(last=False)
        return loaded

    def execute(self, job: Job) -> Reply:
        fuel = job.fuel is not None
        loaded = self.load(job.bundle, Path(job.artifact), fuel)
        if loaded is None:
            return Reply(job.id, NEED_COMPILE)
        engine, linker = self._engine(fuel)
        ctx = CallContext(host=self.host, ids=job.ids, grants=job.grants, secrets=job.secrets, user=job.user,
                          deadline=time.monotonic() + job.timeout_ms / 1000)
        store = wasmtime.Store(engine, data=ctx)
        store.set_epoch_deadline(max(1, job.timeout_ms // 10))
        store.set_limits(memory_size=job.memory_mb << 20)
        if fuel:
            store.set_fuel(job.fuel)
        if loaded.uses_wasi:
            store.set_wasi(_wasi_config(ctx))
        self._running.set()
        try:
            instance = linker.instantiate(store, loaded.component)
            handler = None if loaded.handler is None else instance.get_func(store, loaded.handler)
            if handler is None:
                raise GuestRefused("component does not export `handler`")
            response = handler(store, _request_record(job))
        except (wasmtime.WasmtimeError, HostFunctionError, GuestRefused) as e:
            return Reply(job.id, ERROR, error="execute_failed: " + _describe(e, job), events=ctx.events)
        finally:
            self._running.clear()
            store.close()
        return Reply(job.id, OK, status=response.status, headers=[(h.name, h.value) for h in response.headers],
                     body=response.body, events=ctx.events)


def _request_record(job: Job):
    ids, http = job.ids, job.request
    return record(
        context=record(request_id=ids.request, tenant_id=ids.tenant, extension_id=ids.extension,
                       install_id=ids.install, version_id=ids.version),
        http=record(method=http.method, url=http.url, headers=[record(name=n, value=v) for n, v in http.headers],
                    body=http.body),
    )


def _wasi_config(ctx: CallContext) -> wasmtime.WasiConfig:
    """WASI without env, args, files or network; stdout/stderr become log events."""
    config = wasmtime.WasiConfig()
    config.stdout_custom = lambda data: _guest_output(ctx, "stdout", "info", data)
    config.stderr_custom = lambda data: _guest_output(ctx, "stderr", "error", data)
    return config


def _guest_output(ctx: CallContext, stream: str, level: str, data: bytes) -> int:
    text = bytes(data).decode("utf-8", "replace").rstrip("\r\n")
    if text:
        ctx.emit(level, stream, text)
    return len(data)


def _describe(e: Exception, job: Job) -> str:
    """A short reason for execute_failed; wasmtime puts the cause on the last line."""
    text = str(e)
    if "interrupt" in text:
        return f"timeout: the handler ran longer than {job.timeout_ms} ms"
    if "all fuel consumed" in text:
        return f"fuel exhausted ({job.fuel} units)"
    if "too much data is being copied" in text:
        return "response body too large"
    if "exceeds memory limits" in text or "memory limit" in text:
        return f"memory limit of {job.memory_mb} MiB exceeded: {last_line(e)}"
    return last_line(e)


def last_line(e: Exception) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(e).__name__
