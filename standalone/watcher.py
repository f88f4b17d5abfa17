"""The file changes ``flask ext dev`` reacts to (watchfiles: inotify, no polling).

Dependency folders, dotfiles and the pack outputs never count. When the extension has a
build script, its outputs (``dist/``, ``ui/dist/``) do not count either: the build wrote
them, and reacting would rebuild forever.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import watchfiles

from standalone.packing import PACK_OUTPUTS, SKIPPED_DIRS

BUILD_OUTPUTS = ("dist/", "ui/dist/")
IDLE_MS = 200  # how often the notifier returns with nothing, so a stop is seen


class _Filter(watchfiles.DefaultFilter):
    def __init__(self, root: Path, ignore_build_outputs: bool):
        super().__init__(ignore_dirs=tuple(SKIPPED_DIRS))
        self.root = root
        self.ignored = PACK_OUTPUTS + (BUILD_OUTPUTS if ignore_build_outputs else ())

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        rel = Path(path).resolve().relative_to(self.root).as_posix()
        return (super().__call__(change, path) and not (rel + "/").startswith(self.ignored)
                and not any(part.startswith(".") for part in rel.split("/")))


def changes(folder: str | Path, ignore_build_outputs: bool, debounce_s: float = 0.5) -> Iterator[list[str]]:
    """The relative paths changed (added, modified, removed), one sorted batch per burst of changes.

    Watching has begun when this returns: a change made right after it is seen.
    """
    root = Path(folder).resolve()
    batches = watchfiles.watch(root, watch_filter=_Filter(root, ignore_build_outputs),
                               debounce=int(debounce_s * 1000), rust_timeout=IDLE_MS, yield_on_timeout=True)
    first = next(batches)  # the notifier is set up once the first (timeout) batch comes back
    return _relative(root, itertools.chain([first], batches))


def _relative(root: Path, batches: Iterator[set]) -> Iterator[list[str]]:
    for batch in batches:
        if batch:  # an empty batch is a timeout
            yield sorted({Path(path).resolve().relative_to(root).as_posix() for _, path in batch})
