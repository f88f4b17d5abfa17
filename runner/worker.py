"""A worker process: ``python -m runner.worker FD``.

Started fresh (exec, never forked from a process that compiled: toolchain.md
§8) by runner/pool.py. It keeps one Engine and Linker per fuel setting, an LRU
of loaded components, and a ticker thread that advances the epoch every 10 ms.
Each execution gets a fresh Store carrying its CallContext, its epoch
deadline, memory limit and fuel. It never compiles: a missing or unusable
artifact is answered with ``need_compile`` and the pool compiles it.
"""
from __future__ import annotations

import logging
import os
import select
import socket
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from wasmtime.component import Component

import logs
from runner import protocol, wasm_compat
from runner.engine import load_artifact, make_engine
from runner.host.call import CallContext
from runner.host.values import record
from runner.linker import HostFunctionError, build_linker

log = logging.getLogger("runner.worker")

TICK_SECONDS = 0.010


@dataclass
class Loaded:
    component: Component
    uses_wasi: bool


class Runtime:
    """Engines, linkers and loaded components of this process."""

    def __init__(self, settings):
        self.settings = settings
        self.engines: dict[bool, tuple[wasmtime.Engine, object]] = {}
        self.components: OrderedDict[tuple[str, bool], Loaded] = OrderedDict()
        self._engine(False)
        threading.Thread(target=self._tick, name="epoch-ticker", daemon=True).start()

    def _engine(self, fuel: bool):
        if fuel not in self.engines:
            engine = make_engine(fuel)
            self.engines[fuel] = (engine, build_linker(engine))
        return self.engines[fuel]

    def _tick(self) -> None:
        while True:
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
            log.warning("discarding unusable artifact %s: %s", artifact, _last_line(e))
            artifact.unlink(missing_ok=True)
            return None
        imports = component.type.imports(engine)
        loaded = Loaded(component, uses_wasi=any(name.startswith("wasi:") for name in imports))
        if any(name.startswith("wasi:http") for name in imports):
            raise GuestRefused("component imports wasi:http, which this runner never links")
        self.components[key] = loaded
        while len(self.components) > self.settings.component_cache_size:
            self.components.popitem(last=False)
        return loaded

    def execute(self, job: dict) -> dict:
        fuel = bool(job.get("fuel"))
        loaded = self.load(job["bundle"], Path(job["artifact"]), fuel)
        if loaded is None:
            return {"outcome": "need_compile"}
        engine, linker = self._engine(fuel)
        ctx = CallContext(settings=self.settings, deadline=time.monotonic() + job["timeout_ms"] / 1000,
                          **job["call"])
        store = wasmtime.Store(engine, data=ctx)
        store.set_epoch_deadline(max(1, job["timeout_ms"] // 10))
        store.set_limits(memory_size=job["memory_mb"] << 20)
        if fuel:
            store.set_fuel(job["fuel"])
        if loaded.uses_wasi:
            store.set_wasi(_wasi_config(ctx))
        try:
            instance = linker.instantiate(store, loaded.component)
            handler = instance.get_func(store, "handler")
            if handler is None:
                raise GuestRefused("component does not export `handler`")
            response = handler(store, _request_record(ctx, job["request"]))
        except (wasmtime.WasmtimeError, HostFunctionError, GuestRefused) as e:
            return {"outcome": "error", "error": "execute_failed: " + _describe(e, job), "events": ctx.events}
        finally:
            store.close()
        headers = [(h.name, h.value) for h in response.headers]
        return {"outcome": "ok", "status": response.status, "headers": headers, "body": response.body,
                "events": ctx.events}


class GuestRefused(Exception):
    pass


def _request_record(ctx: CallContext, request: dict):
    return record(
        context=record(request_id=ctx.request_id, tenant_id=ctx.tenant_id, extension_id=ctx.extension_id,
                       install_id=ctx.install_id, version_id=ctx.version_id),
        http=record(method=request["method"], url=request["url"],
                    headers=[record(name=n, value=v) for n, v in request["headers"]], body=request["body"]),
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


def _describe(e: Exception, job: dict) -> str:
    """A short reason for execute_failed; wasmtime puts the cause on the last line."""
    text = str(e)
    if "interrupt" in text:
        return f"timeout: the handler ran longer than {job['timeout_ms']} ms"
    if "all fuel consumed" in text:
        return f"fuel exhausted ({job['fuel']} units)"
    if "too much data is being copied" in text:
        return "response body too large"
    if "exceeds memory limits" in text or "memory limit" in text:
        return f"memory limit of {job['memory_mb']} MiB exceeded: {_last_line(e)}"
    return _last_line(e)


def _last_line(e: Exception) -> str:
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(e).__name__


def serve(sock: socket.socket) -> None:
    init = protocol.recv(sock)
    settings = init["settings"]
    logs.configure(settings.log_level)
    wasm_compat.install()
    runtime = Runtime(settings)
    protocol.send(sock, {"outcome": "ready", "pid": os.getpid()})
    while True:
        _spin_until_readable(sock, settings.worker_spin_us / 1e6)
        try:
            job = protocol.recv(sock)
        except (protocol.ConnectionClosed, ConnectionResetError):  # the pool closed or replaced us
            return
        try:
            reply = runtime.execute(job)
        except GuestRefused as e:
            reply = {"outcome": "error", "error": f"execute_failed: {e}", "events": []}
        except Exception as e:  # never let one request take the worker down
            log.exception("unexpected worker error")
            reply = {"outcome": "error", "error": f"execute_failed: internal error: {e}", "events": []}
        reply["id"] = job["id"]
        reply["loaded"] = runtime.loaded_bundles()
        protocol.send(sock, reply)


def _spin_until_readable(sock: socket.socket, seconds: float) -> None:
    """Poll briefly before blocking: a worker that sleeps between calls wakes on a cold
    CPU and its next call of a large guest costs ~1 ms more (measured on this machine)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if select.select([sock], [], [], 0)[0]:
            return
        os.sched_yield()  # the Gunicorn process, if runnable here, goes first


if __name__ == "__main__":
    channel = socket.socket(fileno=int(sys.argv[1]))
    channel.setblocking(True)  # a gevent parent hands us a non-blocking descriptor
    serve(channel)
