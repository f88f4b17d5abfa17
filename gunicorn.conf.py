"""Gunicorn settings: gevent workers, one process by default (the wasm worker
pool gives the parallelism; each Gunicorn process would start its own pool)."""
import os

from settings import Settings

_settings = Settings.from_env()

bind = f"{_settings.host}:{_settings.port}"
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_connections = 1000
timeout = 120
graceful_timeout = 30
keepalive = 5
accesslog = None  # the app writes JSON lines; Gunicorn's text lines would mix formats


def post_worker_init(worker):
    """Start the wasm pool before traffic, and mark the app draining on SIGTERM
    so /readyz fails first during a graceful shutdown."""
    app = worker.wsgi
    app.extensions["executor"].pool.start()
    handle_exit = worker.handle_exit

    def draining_exit(sig, frame):
        app.extensions["draining"] = True
        handle_exit(sig, frame)

    worker.handle_exit = draining_exit


def worker_exit(server, worker):
    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        app.extensions["executor"].pool.close()
