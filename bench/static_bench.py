"""Static UI benchmark (`make bench`): /ext-ui through Gunicorn (gevent, 1 worker) vs its peers.

All serve the same extracted ``ui/`` folder on loopback: ours through the full /ext-ui
path (tenant, hash, sanitizer, index, ETag headers; memory or sendfile), WhiteNoise (the
Python peer, pinned in pyproject's ``bench`` extra) under the same Gunicorn settings, and
nginx with ``sendfile on`` and keep-alive, one worker process. wrk runs with keep-alive
against each, for a 1 KiB, a 100 KiB and a 1 MiB asset. The same Gunicorn settings serving
a 2-byte hello-world WSGI app give the ceiling any Python handler can reach here. Prints a
markdown table; the figures are measured side by side in this same run, never asserted.
``main`` returns the figures for run.py's target table.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from common import GUNICORN, ROOT, service_env, stop, wait_ok, wrk

from helpers import free_port, publish

TENANT, EXT = "bench-tenant", "bench-ext"
APP = "app:create_app()"
ASSETS = {"1 KiB": "assets/small.js", "100 KiB": "assets/big.js", "1 MiB": "assets/huge.js"}
TENANT_HEADER = {"x-tenant-id": TENANT}

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    types {{ text/javascript js; text/html html; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


HELLO_APP = """\
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
"""

WHITENOISE_APP = """\
from whitenoise import WhiteNoise
from hello import app as hello

app = WhiteNoise(hello, root={root!r})
"""


def bundle_members() -> dict[str, bytes]:
    line = b"console.log('static bench');\n"
    return {
        "ui/index.html": b"<!doctype html><title>bench</title><script src=assets/small.js></script>\n",
        "ui/assets/small.js": (line * 40)[:1024],
        "ui/assets/big.js": (line * 4000)[:100 * 1024],
        "ui/assets/huge.js": (line * 40000)[:1024 * 1024],
        "dist/main.wasm": b"\0asm\1\0\0\0",
    }


def main() -> dict:
    seconds = int(os.environ.get("BENCH_SECONDS", "10"))
    work = Path(tempfile.mkdtemp(prefix="static-bench-"))
    digest = publish(work / "bundles", TENANT, EXT, bundle_members())
    ours_port, nginx_port, hello_port, wn_port = free_port(), free_port(), free_port(), free_port()
    env = service_env(work, PORT=str(ours_port), EXT_STATIC_STRICT_VALIDATION="false", EXT_WORKERS="1")
    gunicorn = [GUNICORN, "-k", "gevent", "-w", "1", "--keep-alive", "5"]
    ours = subprocess.Popen([*gunicorn, "-c", str(ROOT / "gunicorn.conf.py"), "-b", f"127.0.0.1:{ours_port}", APP],
                            cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    (work / "hello.py").write_text(HELLO_APP)
    hello = subprocess.Popen([*gunicorn, "-b", f"127.0.0.1:{hello_port}", "hello:app"], cwd=work,
                             stderr=subprocess.DEVNULL)
    nginx = whitenoise = None
    ours_url = f"http://127.0.0.1:{ours_port}/ext-ui/{EXT}/sha256:{digest}/"
    nginx_url, wn_url = f"http://127.0.0.1:{nginx_port}/", f"http://127.0.0.1:{wn_port}/"
    try:
        wait_ok(ours_url + ASSETS["1 KiB"], ours, "gunicorn", TENANT_HEADER)  # the first fetches and extracts
        wait_ok(f"http://127.0.0.1:{hello_port}/", hello, "gunicorn hello")
        ui = work / "cache" / digest / "ui"
        (work / "peer.py").write_text(WHITENOISE_APP.format(root=str(ui)))
        whitenoise = subprocess.Popen([*gunicorn, "-b", f"127.0.0.1:{wn_port}", "peer:app"], cwd=work,
                                      stderr=subprocess.DEVNULL)
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(work=work, port=nginx_port, root=ui))
        nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)], stderr=subprocess.DEVNULL)
        wait_ok(nginx_url + ASSETS["1 KiB"], nginx, "nginx")
        wait_ok(wn_url + ASSETS["1 KiB"], whitenoise, "gunicorn whitenoise")
        rows = [(label, wrk(ours_url + asset, 32, seconds, TENANT_HEADER), wrk(wn_url + asset, 32, seconds),
                 wrk(nginx_url + asset, 32, seconds)) for label, asset in ASSETS.items()]
        ceiling = wrk(f"http://127.0.0.1:{hello_port}/", 32, seconds)
    finally:
        for process in (ours, hello, whitenoise, nginx):
            stop(process)
        shutil.rmtree(work, ignore_errors=True)
    print(table(rows, ceiling))
    return {"small": rows[0][1]["rps"], "small_whitenoise": rows[0][2]["rps"], "hello": ceiling["rps"]}


def table(rows, ceiling) -> str:
    lines = ["| asset | ours req/s | WhiteNoise req/s | nginx req/s | ours / WhiteNoise | ours / nginx | "
             "ours / hello-world | ours p99 ms | WhiteNoise p99 ms | nginx p99 ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, ours, peer, nginx in rows:
        lines.append(f"| {label} | {ours['rps']:.0f} | {peer['rps']:.0f} | {nginx['rps']:.0f} | "
                     f"{ours['rps'] / peer['rps']:.2f}x | {ours['rps'] / nginx['rps']:.2f}x | "
                     f"{ours['rps'] / ceiling['rps']:.2f}x | {ours['p99']:.2f} | {peer['p99']:.2f} | {nginx['p99']:.2f} |")
        if ours["errors"] or peer["errors"] or nginx["errors"]:
            lines.append(f"| (non-2xx: ours {ours['errors']}, WhiteNoise {peer['errors']}, nginx {nginx['errors']}) "
                         "| | | | | | | | | |")
    lines.append("")
    lines.append(f"Ceiling: a hello-world WSGI app on the same Gunicorn settings: {ceiling['rps']:.0f} req/s, "
                 f"p99 {ceiling['p99']:.2f} ms.")
    lines.append("Gunicorn (ours, WhiteNoise, hello-world): gevent worker class, 1 worker, keep-alive 5 s; "
                 "nginx: 1 process, sendfile on; wrk -t2 -c32 with keep-alive; all on one machine.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
