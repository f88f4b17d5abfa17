"""`make profile`: flame graphs of the Gunicorn process and a worker under wrk (py-spy, bench extra).

``python bench/profile.py [wat|sdk] [connections] [seconds]`` starts the service as the executor
benchmark does, drives POST /v1/execute with wrk and records, with py-spy, only samples that hold
the GIL (CPU, not waits). It writes ``var/profile/<component>-c<n>-{gunicorn,worker}.svg`` and
prints the frames with the largest inclusive share of each process.
"""
from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, children, stop, wrk
from exec_bench import EXT, TENANT, guests, start_service, warm

from helpers import execute_body, publish

PY_SPY = str(ROOT / ".venv/bin/py-spy")
OUT = ROOT / "var" / "profile"
ROUTES = {"wat": "/echo", "sdk": "/all"}


def record(pid: int, seconds: int, stem: Path) -> list[subprocess.Popen]:
    """py-spy twice on one process: an SVG to look at, raw stacks to summarise."""
    common = [PY_SPY, "record", "-p", str(pid), "-r", "500", "-d", str(seconds), "--nonblocking", "--gil"]
    return [subprocess.Popen([*common, "-f", kind, "-o", f"{stem}.{ext}"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for kind, ext in (("flamegraph", "svg"), ("raw", "txt"))]


def summary(raw: Path, top: int = 25) -> str:
    """The frames with the largest share of samples (a frame counts once per stack)."""
    shares, total = collections.Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for frame in {re.sub(r":\d+\)$", ")", f) for f in stack.split(";")}:
            shares[frame.split("site-packages/")[-1].replace(str(ROOT) + "/", "")] += int(count)
    return "\n".join(f"{100 * n / max(1, total):5.1f}%  {frame}" for frame, n in shares.most_common(top))


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "wat"
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    work = Path(tempfile.mkdtemp(prefix="profile-"))
    digest = publish(work / "bundles", TENANT, EXT, {"dist/main.wasm": guests()[name]})
    server, url = start_service(work)
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        body = execute_body(digest, path=ROUTES[name], body=b"{}", tenant=TENANT, extension=EXT)
        headers = {"x-alga-tenant": TENANT, "x-alga-extension": EXT}
        warm(url, body, headers)
        (front,) = children(server.pid, "gunicorn")
        worker = children(front, "runner.worker")[0]
        stems = {"gunicorn": OUT / f"{name}-c{connections}-gunicorn", "worker": OUT / f"{name}-c{connections}-worker"}
        spies = record(front, seconds, stems["gunicorn"]) + record(worker, seconds, stems["worker"])
        result = wrk(url, connections, seconds, headers, post_json=body, cpu_of={"gunicorn": [front]})
        for spy in spies:
            spy.wait()
    finally:
        stop(server)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{name} c={connections}: {result['rps']:.0f} req/s, Gunicorn process "
          f"{result['cpu_us']['gunicorn']:.0f} µs CPU per request (while sampled)")
    for process, stem in stems.items():
        print(f"\n{process} ({stem}.svg), share of GIL-holding samples:\n{summary(Path(f'{stem}.txt'))}")


if __name__ == "__main__":
    main()
