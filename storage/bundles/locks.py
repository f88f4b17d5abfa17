"""Cross-process file locks for the cache folder: ``flock`` polled, so waits yield under gevent.

``flock`` locks are per open file description and work on local disks and on shared
volumes that support them (NFSv4, most CSI volumes); a lock file is unlinked while held
exclusively, and a waiter that then gets the lock checks that its file is still the one
at the path (else it retries), so no lock file outlives its use.
"""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

POLL_S = 0.02


def flock(fd: int, mode: int, wait: bool) -> bool:
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if not wait:
                return False
            time.sleep(POLL_S)


def same_file(fd: int, path: str | Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def lock_file(path: str | Path, mode: int, wait: bool) -> int | None:
    """Open and lock ``path`` (retrying if it was replaced meanwhile); the fd, or None if busy."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not flock(fd, mode, wait):
            os.close(fd)
            return None
        if same_file(fd, path):
            return fd
        os.close(fd)


def unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold ``path`` exclusively across processes (polling, so gevent keeps serving); removed after."""
    fd = lock_file(path, fcntl.LOCK_EX, wait=True)
    try:
        yield
    finally:
        unlink(path)
        os.close(fd)
