"""An extension's own build: ``npm run build`` when its package.json has a build script.

Dependencies are installed first when ``node_modules`` is missing (``npm ci`` with a lock
file, else ``npm install``), so a fresh ``flask ext new`` folder builds with no other step.
npm's output is captured: a failed build raises :class:`BuildError` carrying it, a good one
shows only its step and time.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from service.progress import QUIET, Progress

OUTPUT_LINES = 40  # the end of npm's output shown for a failure (the error is last)


class BuildError(Exception):
    """The extension's own build failed or could not start; ``output`` is what npm printed."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output


def package(folder: str | Path) -> dict:
    """The folder's package.json, or {} when it has none (or it is unreadable)."""
    try:
        doc = json.loads((Path(folder) / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def has_build(folder: str | Path) -> bool:
    """The folder's package.json has a build script."""
    scripts = package(folder).get("scripts")
    return isinstance(scripts, dict) and "build" in scripts


def build(folder: str | Path, progress: Progress = QUIET) -> bool:
    """Install missing dependencies, then run ``npm run build``; False when there is no build script."""
    if not has_build(folder):
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise BuildError("package.json has a build script but npm is not installed; install Node.js")
    folder = Path(folder)
    doc = package(folder)
    if (doc.get("dependencies") or doc.get("devDependencies")) and not (folder / "node_modules").exists():
        command = "ci" if (folder / "package-lock.json").is_file() else "install"
        with progress.step(f"npm {command} (node_modules is missing)"):
            _run([npm, command, "--no-audit", "--no-fund"], folder, f"npm {command}")
    with progress.step("npm run build"):
        _run([npm, "run", "build"], folder, "npm run build")
    return True


def _run(args: list[str], folder: Path, what: str) -> None:
    try:
        done = subprocess.run(args, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as e:
        raise BuildError(f"{what} could not start: {e}") from None
    if done.returncode != 0:
        lines = done.stdout.rstrip().splitlines()
        cut = f"({len(lines) - OUTPUT_LINES} earlier lines left out)\n" if len(lines) > OUTPUT_LINES else ""
        raise BuildError(f"{what} failed (exit status {done.returncode}); fix it and save again",
                         cut + "\n".join(lines[-OUTPUT_LINES:]))
