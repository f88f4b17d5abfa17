"""`make compare REV=main`: this tree against another revision, interleaved under the same load.

Both services run under Gunicorn (gunicorn.conf.py, EXT_WORKERS=2) on one bundle store; wrk drives
each in turn for 5 s per case, over several rounds, so load from other work on the machine falls on
both alike. Prints p50, req/s and the CPU per request of the Gunicorn process and the workers
(from /proc). The other revision is checked out in a temporary git worktree and uses this venv.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import exec_bench
import static_bench
from common import GUNICORN, ROOT, children, service_env, stop, wait_ok, wrk

from helpers import execute_body, free_port, publish

HEADERS = {"x-alga-tenant": exec_bench.TENANT, "x-alga-extension": exec_bench.EXT}
TENANT_HEADER = {"x-tenant-id": exec_bench.TENANT}
CASES = [("wat", 1), ("wat", 8), ("sdk", 1), ("sdk", 8), ("ui", 32)]
ROUTES = {"wat": "/echo", "sdk": "/all"}


def start(tree: Path, work: Path, store: Path, bodies: dict, ui_url: str) -> tuple[subprocess.Popen, str, dict]:
    port = free_port()
    env = service_env(work, EXT_WORKERS="2", PORT=str(port), EXT_STATIC_STRICT_VALIDATION="false",
                      BUNDLE_STORE_BASE=str(store), PYTHONPATH=str(tree))
    server = subprocess.Popen([GUNICORN, "-c", "gunicorn.conf.py", "app:create_app()"], cwd=tree, env=env,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_ok(base + "/livez", server, str(tree))
    for body in bodies.values():
        exec_bench.warm(base + "/v1/execute", body, HEADERS)
    wait_ok(base + ui_url, server, str(tree), TENANT_HEADER)
    front = children(server.pid, "gunicorn")[0]
    return server, base, {"gunicorn": [front], "workers": children(front, "runner.worker")}


def main() -> None:
    rev = sys.argv[1] if len(sys.argv) > 1 else "main"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    work = Path(tempfile.mkdtemp(prefix="compare-"))
    other = work / "tree"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(other), rev], cwd=ROOT, check=True)
    store = work / "bundles"
    digests = {name: publish(store, exec_bench.TENANT, exec_bench.EXT, {"dist/main.wasm": wasm})
               for name, wasm in exec_bench.guests().items()}
    ui = publish(store, exec_bench.TENANT, exec_bench.EXT, static_bench.bundle_members())
    ui_url = f"/ext-ui/{exec_bench.EXT}/sha256:{ui}/assets/small.js"
    bodies = {name: execute_body(digests[name], path=ROUTES[name], body=b"{}", tenant=exec_bench.TENANT,
                                 extension=exec_bench.EXT) for name in ROUTES}
    servers = {}
    try:
        for label, tree in ((rev, other), ("this tree", ROOT)):
            servers[label] = start(tree, work / label.replace(" ", "-"), store, bodies, ui_url)
        print("| case | tree | p50 ms | req/s | Gunicorn CPU µs/req | workers CPU µs/req | load |")
        print("|---|---|---|---|---|---|---|")
        for _ in range(rounds):
            for name, connections in CASES:
                for label, (_, base, pids) in servers.items():
                    if name == "ui":
                        r = wrk(base + ui_url, connections, 5, TENANT_HEADER, cpu_of=pids)
                    else:
                        r = wrk(base + "/v1/execute", connections, 5, HEADERS, post_json=bodies[name], cpu_of=pids)
                    print(f"| {name} c={connections} | {label} | {r['p50']:.2f} | {r['rps']:.0f} | "
                          f"{r['cpu_us']['gunicorn']:.0f} | {r['cpu_us']['workers']:.0f} | "
                          f"{os.getloadavg()[0]:.1f} |", flush=True)
    finally:
        for server, _, _ in servers.values():
            stop(server)
        subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
