"""``python -m runner.worker.compiler [--fuel] WASM ARTIFACT``: compile one component.

Compiling takes seconds and leaves a process at ~330 MiB RSS, so it runs in a
short-lived process of its own, never in a request worker (toolchain.md §5, §8).
Exit status 0 on success; 2 with the reason on stderr when the component is invalid.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import wasmtime

from runner.worker.engine import compile_to_artifact, make_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="runner.worker.compiler")
    parser.add_argument("--fuel", action="store_true")
    parser.add_argument("wasm", type=Path)
    parser.add_argument("artifact", type=Path)
    args = parser.parse_args(argv)
    try:
        compile_to_artifact(make_engine(args.fuel), args.wasm, args.artifact)
    except (wasmtime.WasmtimeError, OSError, ValueError) as e:
        print(str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
