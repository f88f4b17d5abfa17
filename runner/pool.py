"""The worker pool, parent side. Never imports wasmtime.

Workers are fresh interpreters (``python -m runner.worker``) talking over a
socketpair with runner/messages.py records; all waiting uses sockets and
``threading`` primitives, which gevent makes cooperative under Gunicorn and which
are plain threads under ``flask run``. A request prefers an idle worker that
already has its component loaded. Components are compiled in a separate
short-lived process, once per artifact (single flight), while the workers keep
serving others. The service's Lifecycle starts and stops the pool.
"""
from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from runner import channel
from runner.messages import NEED_COMPILE, Job, Reply, WorkerConfig
from service import metrics
from storage.bundles.locks import exclusive_lock

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
COMPILE_TIMEOUT_S = 300


class RunnerBusy(Exception):
    """Every worker is busy and the queue is full (HTTP 503)."""


class ExecutionFailed(Exception):
    """The execution could not complete; the message follows ``execute_failed: ``."""


class Worker:
    """One worker process and its socket."""

    def __init__(self, config: WorkerConfig, slot: int):
        self.slot = slot
        self.loaded: list[str] = []
        self.busy = False
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner.worker", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.sock = ours
        self.ready = False
        channel.send(self.sock, config)

    def call(self, job: Job, timeout: float) -> Reply:
        deadline = time.monotonic() + timeout
        if not self.ready:
            self.sock.settimeout(60)
            channel.recv(self.sock)  # Ready
            self.ready = True
        channel.send(self.sock, job)
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        reply: Reply = channel.recv(self.sock)
        self.loaded = reply.loaded
        return reply

    def stop(self) -> None:
        try:
            self.sock.close()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()

    def exit_reason(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "worker did not answer before the hard deadline and was replaced"
        if code < 0:
            return f"worker process died (signal {-code}) and was replaced"
        return f"worker process exited with status {code} and was replaced"


class _Waiter:
    """A request queued for a worker; the releasing request hands its worker over directly."""

    __slots__ = ("event", "worker")

    def __init__(self):
        self.event = threading.Event()
        self.worker: Worker | None = None


class Pool:
    def __init__(self, config: WorkerConfig):
        self.config = config
        self.settings = config.runner
        self._lock = threading.Lock()
        self._workers: list[Worker] = []
        self._waiters: deque[_Waiter] = deque()
        self._closed = False
        self._compiling: dict[Path, threading.Event] = {}
        self._next_id = 0

    # lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if not self._workers and not self._closed:
                self._workers = [Worker(self.config, i) for i in range(self.settings.workers)]

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
            while self._waiters:
                self._waiters.popleft().event.set()  # wakes with no worker: "shutting down"
        for w in workers:
            w.stop()

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    def alive_workers(self) -> int:
        return sum(1 for w in self._workers if w.proc.poll() is None)

    # executing ---------------------------------------------------------------
    def execute(self, job: Job, wasm: Path, hard_timeout: float) -> Reply:
        """Run ``job`` on a worker; returns the worker's reply (outcome ok or error)."""
        artifact, fuel = Path(job.artifact), job.fuel is not None
        if not artifact.exists():
            self.compile(wasm, artifact, fuel)
        for attempt in range(2):
            reply = self._run_on_worker(job, hard_timeout)
            if reply.outcome != NEED_COMPILE:
                return reply
            # The artifact vanished or was unusable (the worker deleted it): build it again.
            self.compile(wasm, artifact, fuel)
        raise ExecutionFailed("component could not be loaded after compiling")

    def _run_on_worker(self, job: Job, hard_timeout: float) -> Reply:
        with self._lock:
            self._next_id += 1
            job.id = self._next_id
        worker = self._acquire(job.bundle)
        try:
            reply = worker.call(job, hard_timeout)
        except (channel.ConnectionClosed, OSError) as e:
            if not isinstance(e, TimeoutError):
                try:
                    worker.proc.wait(timeout=2)  # collect the exit status for the message
                except subprocess.TimeoutExpired:
                    pass
            reason = worker.exit_reason()
            self._replace(worker)
            log.error("worker lost", extra={"slot": worker.slot, "reason": reason, "bundle": job.bundle})
            raise ExecutionFailed(reason) from e
        except BaseException:
            # Anything else (a reply that would not unpickle, a greenlet killed mid-call) leaves the
            # channel in an unknown state: replace the worker rather than reuse it.
            self._replace(worker)
            raise
        self._release(worker)
        return reply

    def _acquire(self, bundle: str) -> Worker:
        with self._lock:
            if self._closed:
                raise ExecutionFailed("runner is shutting down")
            idle = [w for w in self._workers if not w.busy]
            if idle:
                # Prefer a worker that has the component loaded, then the least loaded one.
                worker = min(idle, key=lambda w: (bundle not in w.loaded, len(w.loaded)))
                worker.busy = True
                return worker
            if len(self._waiters) >= self.settings.queue_size:
                raise RunnerBusy()
            waiter = _Waiter()
            self._waiters.append(waiter)
        waiter.event.wait(self.settings.queue_timeout_ms / 1000)
        with self._lock:
            if waiter.worker is not None:
                return waiter.worker
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        if self._closed:
            raise ExecutionFailed("runner is shutting down")
        raise RunnerBusy()

    def _release(self, worker: Worker) -> None:
        """Hand the worker to the oldest waiter (FIFO), or mark it idle."""
        with self._lock:
            waiter = self._waiters.popleft() if self._waiters and not self._closed else None
            if waiter is None:
                worker.busy = False
                return
            waiter.worker = worker
            waiter.event.set()
        # Let the waiter send its job now, before this request finishes writing its
        # own response: otherwise the worker idles for that long (gevent runs one
        # greenlet until it blocks; under threads this just yields the GIL).
        time.sleep(0)

    def _replace(self, worker: Worker) -> None:
        worker.stop()
        metrics.WORKERS_REPLACED.inc()
        with self._lock:
            if worker not in self._workers or self._closed:
                return
            replacement = Worker(self.config, worker.slot)
            replacement.busy = True
            self._workers[self._workers.index(worker)] = replacement
        self._release(replacement)

    # compiling ---------------------------------------------------------------
    def compile(self, wasm: Path, artifact: Path, fuel: bool) -> None:
        """Compile once per artifact: concurrent callers wait for the first one."""
        with self._lock:
            pending = self._compiling.get(artifact)
            leader = pending is None
            if leader:
                pending = self._compiling[artifact] = threading.Event()
        if not leader:
            pending.wait(COMPILE_TIMEOUT_S)
            if artifact.exists():
                return
            raise ExecutionFailed("compile failed (see the first request's error)")
        try:
            with exclusive_lock(artifact.with_suffix(".lock")):  # other Gunicorn processes
                if not artifact.exists():
                    self._run_compiler(wasm, artifact, fuel)
        finally:
            with self._lock:
                del self._compiling[artifact]
            pending.set()

    def _run_compiler(self, wasm: Path, artifact: Path, fuel: bool) -> None:
        started = time.monotonic()
        cmd = [sys.executable, "-m", "runner.worker.compiler", *(["--fuel"] if fuel else []), str(wasm), str(artifact)]
        try:
            done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ExecutionFailed(f"compile did not finish within {COMPILE_TIMEOUT_S} s") from None
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"compiler exited with {done.returncode}"])[-1]
            raise ExecutionFailed(f"compile failed: {reason}")
        metrics.COMPILES.inc()
        log.info("compiled component", extra={"artifact": str(artifact), "fuel": fuel,
                                              "ms": round((time.monotonic() - started) * 1000)})
