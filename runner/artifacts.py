"""Where precompiled components live, computed without importing wasmtime.

An artifact is only valid for the wasmtime version and the engine settings
that produced it (toolchain.md §8: epoch interruption, fuel and memory
reservation must match), so all of them are part of its file name. The
Gunicorn process uses this module to know whether a compile is needed; only
workers and the compiler subprocess import wasmtime.
"""
from __future__ import annotations

import functools
import hashlib
import platform
from importlib.metadata import version
from pathlib import Path

WASMTIME_VERSION = version("wasmtime")

# Engine settings that change the compiled code. runner/engine.py builds its
# wasmtime.Config from exactly these; change them here and every artifact
# name changes with them.
ENGINE_FLAGS = {
    "epoch_interruption": True,
    "cranelift_opt_level": "speed",
    "wasm_component_model": True,
}


@functools.cache
def fingerprint(fuel: bool) -> str:
    text = f"{WASMTIME_VERSION}|{platform.machine()}|{sorted(ENGINE_FLAGS.items())}|fuel={fuel}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4096)  # asked on every execution; a Path is immutable
def artifact_path(compiled_dir: Path, fuel: bool) -> Path:
    """``<cache>/<bundle hash>/compiled/main-<wasmtime version>-<settings>.cwasm``.

    The bundle hash (a SHA-256 over the archive that contains ``dist/main.wasm``)
    names the folder, so the key is content hash + wasmtime version + settings.
    """
    return Path(compiled_dir) / f"main-{WASMTIME_VERSION}-{fingerprint(fuel)}.cwasm"
