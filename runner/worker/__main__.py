"""``python -m runner.worker FD``: serve jobs on the socket the pool passed as FD."""
from __future__ import annotations

import logging
import os
import select
import socket
import sys
import time

from runner import channel
from runner.messages import ERROR, Ready, Reply, WorkerConfig
from runner.worker import wasm_compat
from runner.worker.host.call import HostState
from runner.worker.runtime import GuestRefused, Runtime
from service import logs

log = logging.getLogger("runner.worker")


def serve(sock: socket.socket) -> None:
    config: WorkerConfig = channel.recv(sock)
    logs.configure(config.log_level, config.log_format)
    wasm_compat.install()
    runtime = Runtime(HostState.build(config))
    channel.send(sock, Ready(os.getpid()))
    spin_s = config.runner.worker_spin_us / 1e6
    while True:
        _spin_until_readable(sock, spin_s)
        try:
            job = channel.recv(sock)
        except (channel.ConnectionClosed, ConnectionResetError):  # the pool closed or replaced us
            return
        try:
            reply = runtime.execute(job)
        except GuestRefused as e:
            reply = Reply(job.id, ERROR, error=f"execute_failed: {e}")
        except Exception as e:  # never let one request take the worker down
            log.exception("unexpected worker error")
            reply = Reply(job.id, ERROR, error=f"execute_failed: internal error: {e}")
        reply.loaded = runtime.loaded_bundles()
        channel.send(sock, reply)


def _spin_until_readable(sock: socket.socket, seconds: float) -> None:
    """Poll briefly before blocking: a worker that sleeps between calls wakes on a cold
    CPU and its next call of a large guest costs ~1 ms more (measured on this machine)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if select.select([sock], [], [], 0)[0]:
            return
        os.sched_yield()  # the Gunicorn process, if runnable here, goes first


if __name__ == "__main__":
    channel_socket = socket.socket(fileno=int(sys.argv[1]))
    channel_socket.setblocking(True)  # a gevent parent hands us a non-blocking descriptor
    serve(channel_socket)
