"""Progress of long steps (fetching a bundle, compiling a component, an npm build).

``with progress.step("compiling the component"): ...`` shows, in a terminal, a spinner with the
elapsed time that becomes ``✓ compiling the component (9.8 s)`` (``✗ ... failed after ...`` when
the block raises); anywhere else it writes one plain line when the step starts and one when it
ends, so logs and CI output stay readable. :data:`QUIET` shows nothing; :class:`LoggedProgress`
writes the two lines as log records (the service, where steps run inside requests).
"""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

from service.logs import is_terminal

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
TICK_S = 0.1


class Progress:
    """Shows nothing: the base of the others and the default of every caller."""

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        yield

    def note(self, text: str) -> None:
        """A line between steps (a warning, a result)."""


QUIET = Progress()


class LinesProgress(Progress):
    """``label ...`` when a step starts and ``label: done in 1.2 s`` (or ``failed after``) when it ends."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        started = time.monotonic()
        self._write(f"{label} ...")
        try:
            yield
        except BaseException:
            self._write(f"{label}: failed after {time.monotonic() - started:.1f} s")
            raise
        self._write(f"{label}: done in {time.monotonic() - started:.1f} s")

    def note(self, text: str) -> None:
        self._write(text)

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


class SpinnerProgress(LinesProgress):
    """A terminal: one line per step, redrawn every 0.1 s with a spinner and the elapsed time."""

    def __init__(self, stream: TextIO):
        super().__init__(stream)
        self._lock = threading.Lock()

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        started = time.monotonic()
        done = threading.Event()

        def spin() -> None:
            frame = 0
            while not done.wait(TICK_S):
                frame += 1
                self._redraw(f"{FRAMES[frame % len(FRAMES)]} {label} {time.monotonic() - started:.1f} s")

        self._redraw(f"{FRAMES[0]} {label}")
        spinner = threading.Thread(target=spin, name="progress", daemon=True)
        spinner.start()
        try:
            yield
        except BaseException:
            self._finish(done, spinner, f"✗ {label} failed after {time.monotonic() - started:.1f} s")
            raise
        self._finish(done, spinner, f"✓ {label} ({time.monotonic() - started:.1f} s)")

    def note(self, text: str) -> None:
        with self._lock:
            self.stream.write(f"\r\x1b[K{text}\n")
            self.stream.flush()

    def _redraw(self, text: str) -> None:
        with self._lock:
            self.stream.write(f"\r\x1b[K{text}")
            self.stream.flush()

    def _finish(self, done: threading.Event, spinner: threading.Thread, line: str) -> None:
        done.set()
        spinner.join()
        self.note(line)


class LoggedProgress(Progress):
    """Steps as log records: ``<label>`` when it starts, ``<label>: done`` with ``ms`` when it ends."""

    def __init__(self, log: logging.Logger, **extra):
        self.log, self.extra = log, extra

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        started = time.monotonic()
        self.log.info(label, extra=self.extra)
        try:
            yield
        except BaseException:
            self.log.warning(f"{label}: failed", extra={**self.extra, "ms": _ms(started)})
            raise
        self.log.info(f"{label}: done", extra={**self.extra, "ms": _ms(started)})

    def note(self, text: str) -> None:
        self.log.info(text, extra=self.extra)


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def for_stream(stream: TextIO) -> Progress:
    """A spinner when ``stream`` is a terminal, plain lines otherwise."""
    return SpinnerProgress(stream) if is_terminal(stream) else LinesProgress(stream)
