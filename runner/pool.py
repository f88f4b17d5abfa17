"""The worker pool, parent side. Never imports wasmtime.

Workers are fresh interpreters (``python -m runner.worker``) talking over a
socketpair with runner/messages.py records; all waiting uses sockets and
``threading`` primitives, which gevent makes cooperative under Gunicorn and which
are plain threads under ``flask run``. Requests wait in one queue per tenant+extension,
served round-robin, and one extension or tenant holds at most a capped number of workers
(runner/fairness.py). A request prefers an idle worker that already has its component
loaded. Components are compiled in a separate
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
from pathlib import Path

from runner import channel
from runner.fairness import FairQueues, Key
from runner.messages import ERROR, NEED_COMPILE, Job, Reply, WorkerConfig
from service import metrics
from storage.bundles.locks import exclusive_lock

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
COMPILE_TIMEOUT_S = 300
TIMEOUT_ERROR = "execute_failed: timeout"


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

    __slots__ = ("event", "worker", "bundle")

    def __init__(self, bundle: str):
        self.event = threading.Event()
        self.worker: Worker | None = None
        self.bundle = bundle


class _OwnerMetrics:
    """The pool's per tenant+extension metrics, with bounded label values."""

    def __init__(self, max_owners: int):
        self.labels = metrics.LabelBudget(max_owners)

    def queued(self, key: Key, delta: int) -> None:
        metrics.POOL_QUEUED.labels(*self.labels(*key)).inc(delta)

    def running(self, key: Key, delta: int) -> None:
        metrics.POOL_RUNNING.labels(*self.labels(*key)).inc(delta)

    def rejected(self, key: Key, reason: str) -> None:
        metrics.POOL_REJECTED.labels(*self.labels(*key), reason).inc()

    def timed_out(self, key: Key) -> None:
        metrics.POOL_TIMEOUTS.labels(*self.labels(*key)).inc()


class Pool:
    def __init__(self, config: WorkerConfig):
        self.config = config
        self.settings = s = config.runner
        self._lock = threading.Lock()
        self._workers: list[Worker] = []
        self._queues: FairQueues[_Waiter] = FairQueues(s.max_workers_per_extension, s.max_workers_per_tenant,
                                                       s.queue_size)
        self._metrics = _OwnerMetrics(s.metrics_max_owners)
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
            for key, waiter in self._queues.drain():
                self._metrics.queued(key, -1)
                waiter.event.set()  # wakes with no worker: "shutting down"
        for w in workers:
            w.stop()

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    def alive_workers(self) -> int:
        return sum(1 for w in self._workers if w.proc.poll() is None)

    # executing ---------------------------------------------------------------
    def execute(self, job: Job, wasm: Path, hard_timeout: float, owner: Key) -> Reply:
        """Run ``job`` on a worker, queued as ``owner`` (tenant, extension); returns the worker's reply."""
        artifact, fuel = Path(job.artifact), job.fuel is not None
        if not artifact.exists():
            self.compile(wasm, artifact, fuel)
        for attempt in range(2):
            reply = self._run_on_worker(job, hard_timeout, owner)
            if reply.outcome != NEED_COMPILE:
                return reply
            # The artifact vanished or was unusable (the worker deleted it): build it again.
            self.compile(wasm, artifact, fuel)
        raise ExecutionFailed("component could not be loaded after compiling")

    def _run_on_worker(self, job: Job, hard_timeout: float, owner: Key) -> Reply:
        with self._lock:
            self._next_id += 1
            job.id = self._next_id
        worker = self._acquire(owner, job.bundle)
        try:
            reply = worker.call(job, hard_timeout)
        except (channel.ConnectionClosed, OSError) as e:
            if isinstance(e, TimeoutError):
                self._metrics.timed_out(owner)
            else:
                try:
                    worker.proc.wait(timeout=2)  # collect the exit status for the message
                except subprocess.TimeoutExpired:
                    pass
            reason = worker.exit_reason()
            self._replace(worker, owner)
            log.error("worker lost", extra={"slot": worker.slot, "reason": reason, "bundle": job.bundle})
            raise ExecutionFailed(reason) from e
        except BaseException:
            # Anything else (a reply that would not unpickle, a greenlet killed mid-call) leaves the
            # channel in an unknown state: replace the worker rather than reuse it.
            self._replace(worker, owner)
            raise
        self._release(worker, owner)
        if reply.outcome == ERROR and (reply.error or "").startswith(TIMEOUT_ERROR):
            self._metrics.timed_out(owner)
        return reply

    def _acquire(self, owner: Key, bundle: str) -> Worker:
        with self._lock:
            if self._closed:
                raise ExecutionFailed("runner is shutting down")
            idle = [w for w in self._workers if not w.busy]
            if idle and self._queues.may_start_now(owner):
                return self._start(_pick(idle, bundle), owner)
            waiter = _Waiter(bundle)
            if not self._queues.push(owner, waiter):
                self._metrics.rejected(owner, "queue_full")
                raise RunnerBusy()
            self._metrics.queued(owner, 1)
        waiter.event.wait(self.settings.queue_timeout_ms / 1000)
        with self._lock:
            if waiter.worker is not None:
                return waiter.worker
            if self._queues.remove(owner, waiter):
                self._metrics.queued(owner, -1)
        if self._closed:
            raise ExecutionFailed("runner is shutting down")
        self._metrics.rejected(owner, "queue_timeout")
        raise RunnerBusy()

    def _start(self, worker: Worker, owner: Key) -> Worker:
        """Give ``worker`` to ``owner`` (lock held)."""
        worker.busy = True
        self._queues.started(owner)
        self._metrics.running(owner, 1)
        return worker

    def _release(self, worker: Worker, owner: Key) -> None:
        """``owner`` is done with ``worker``: hand it (or another idle one) to the next waiters in
        round-robin order, or leave it idle."""
        with self._lock:
            self._queues.finished(owner)
            self._metrics.running(owner, -1)
            worker.busy = False
            handed = self._dispatch()
        if handed:
            # Let the waiter send its job now, before this request finishes writing its
            # own response: otherwise the worker idles for that long (gevent runs one
            # greenlet until it blocks; under threads this just yields the GIL).
            time.sleep(0)

    def _dispatch(self) -> bool:
        """Match idle workers with waiters that may run (lock held); True when any was handed over."""
        handed = False
        while not self._closed:
            idle = [w for w in self._workers if not w.busy]
            ready = self._queues.next_ready() if idle else None
            if ready is None:
                return handed
            key, waiter = ready
            self._metrics.queued(key, -1)
            waiter.worker = self._start(_pick(idle, waiter.bundle), key)
            waiter.event.set()
            handed = True
        return handed

    def _replace(self, worker: Worker, owner: Key) -> None:
        worker.stop()
        metrics.WORKERS_REPLACED.inc()
        with self._lock:
            if worker not in self._workers or self._closed:
                self._queues.finished(owner)
                self._metrics.running(owner, -1)
                return
            replacement = Worker(self.config, worker.slot)
            replacement.busy = True
            self._workers[self._workers.index(worker)] = replacement
        self._release(replacement, owner)

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


def _pick(idle: list[Worker], bundle: str) -> Worker:
    """Prefer a worker that has the component loaded, then the least loaded one."""
    return min(idle, key=lambda w: (bundle not in w.loaded, len(w.loaded)))
