"""Static UI benchmark (`make bench`): /ext-ui through Gunicorn (gevent, 1 worker) vs nginx.

Both serve the same extracted ``ui/`` folder on loopback: ours through the full
/ext-ui path (tenant, hash, sanitizer, index, ETag headers, sendfile), nginx with
``sendfile on`` and keep-alive, one worker process. wrk runs with keep-alive
against each, for a 1 KiB and a 100 KiB asset. For scale, the same Gunicorn
settings serving a 2-byte hello-world WSGI app give the ceiling any Python
handler can reach here. Prints a markdown table; the figures are measured side by
side in this same run, never asserted.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import free_port, publish  # noqa: E402

TENANT, EXT = "bench-tenant", "bench-ext"
APP = "app:create_app()"
ASSETS = {"1 KiB": "assets/small.js", "100 KiB": "assets/big.js"}

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


def bundle_members() -> dict[str, bytes]:
    line = b"console.log('static bench');\n"
    return {
        "ui/index.html": b"<!doctype html><title>bench</title><script src=assets/small.js></script>\n",
        "ui/assets/small.js": (line * 40)[:1024],
        "ui/assets/big.js": (line * 4000)[:100 * 1024],
        "dist/main.wasm": b"\0asm\1\0\0\0",
    }


def wrk(url: str, seconds: int) -> dict:
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-H", f"x-tenant-id: {TENANT}", url],
                         capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p99": _ms(out, "99%"),
            "errors": int(errors.group(1)) if errors else 0}


def _ms(out: str, label: str) -> float:
    value, unit = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)\b", out).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def _wait_ok(url: str, process: subprocess.Popen, what: str) -> None:
    import requests

    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            if requests.get(url, headers={"x-tenant-id": TENANT}, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer 200 for {url}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    seconds = int(os.environ.get("BENCH_SECONDS", "10"))
    work = Path(tempfile.mkdtemp(prefix="static-bench-"))
    store, cache = work / "bundles", work / "cache"
    digest = publish(store, TENANT, EXT, bundle_members())
    ours_port, nginx_port, hello_port = free_port(), free_port(), free_port()
    env = {**os.environ, "BUNDLE_STORE_BASE": str(store), "EXT_CACHE_ROOT": str(cache), "PORT": str(ours_port),
           "EXT_STATIC_STRICT_VALIDATION": "false", "EXT_WORKERS": "1", "LOG_LEVEL": "warning",
           "EXT_REGISTRY_DB": str(work / "registry.db"), "EXT_SECRETS_KEY_FILE": str(work / "secrets.key"),
           "EXT_INSTALL_SAMPLES": "false"}
    gunicorn = [str(ROOT / ".venv/bin/gunicorn"), "-k", "gevent", "-w", "1", "--keep-alive", "5"]
    ours = subprocess.Popen([*gunicorn, "-c", str(ROOT / "gunicorn.conf.py"), "-b", f"127.0.0.1:{ours_port}", APP],
                            cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    (work / "hello.py").write_text(HELLO_APP)
    hello = subprocess.Popen([*gunicorn, "-b", f"127.0.0.1:{hello_port}", "hello:app"], cwd=work,
                             stderr=subprocess.DEVNULL)
    nginx = None
    ours_url = f"http://127.0.0.1:{ours_port}/ext-ui/{EXT}/sha256:{digest}/"
    nginx_url = f"http://127.0.0.1:{nginx_port}/"
    try:
        _wait_ok(ours_url + ASSETS["1 KiB"], ours, "gunicorn")  # the first request fetches and extracts
        _wait_ok(f"http://127.0.0.1:{hello_port}/", hello, "gunicorn hello")
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(work=work, port=nginx_port, root=cache / digest / "ui"))
        nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)], stderr=subprocess.DEVNULL)
        _wait_ok(nginx_url + ASSETS["1 KiB"], nginx, "nginx")
        rows = [(label, wrk(ours_url + asset, seconds), wrk(nginx_url + asset, seconds))
                for label, asset in ASSETS.items()]
        ceiling = wrk(f"http://127.0.0.1:{hello_port}/", seconds)
    finally:
        for process in (ours, hello, nginx):
            if process is not None:
                _stop(process)
        shutil.rmtree(work, ignore_errors=True)
    print(table(rows, ceiling))


def table(rows, ceiling) -> str:
    lines = ["| asset | ours req/s | nginx req/s | ours / nginx | ours p99 ms | nginx p99 ms |",
             "|---|---|---|---|---|---|"]
    for label, ours, nginx in rows:
        lines.append(f"| {label} | {ours['rps']:.0f} | {nginx['rps']:.0f} | {ours['rps'] / nginx['rps']:.2f}x | "
                     f"{ours['p99']:.2f} | {nginx['p99']:.2f} |")
        if ours["errors"] or nginx["errors"]:
            lines.append(f"| (non-2xx: ours {ours['errors']}, nginx {nginx['errors']}) | | | | | |")
    small_nginx = rows[0][2]["rps"]
    lines.append("")
    lines.append(f"Ceiling: a hello-world WSGI app on the same Gunicorn settings: {ceiling['rps']:.0f} req/s "
                 f"({ceiling['rps'] / small_nginx:.2f}x nginx's 1 KiB), p99 {ceiling['p99']:.2f} ms.")
    lines.append("Gunicorn: gevent worker class, 1 worker; nginx: 1 process, sendfile on; "
                 "wrk -t2 -c32 with keep-alive; all on one machine.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
