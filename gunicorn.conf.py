"""Gunicorn settings: gevent workers, one process by default (the wasm worker
pool gives the parallelism; each Gunicorn process would start its own pool)."""
import os
import shutil
import signal
import tempfile

# Before any process imports prometheus_client: every Gunicorn worker writes its
# metrics here and /metrics sums them (see service/metrics.py).
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(tempfile.gettempdir(), f"alga-runner-metrics-{os.getpid()}"))

from service import gunicorn_errors  # noqa: E402
from gunicorn.glogging import Logger  # noqa: E402

from settings import Settings  # noqa: E402  (after the metrics folder is chosen)

gunicorn_errors.install()  # requests Gunicorn itself refuses (header limits, ...) answer JSON too

_settings = Settings.from_env()

bind = _settings.service.bind
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
worker_connections = 1000
timeout = 120
graceful_timeout = 30
keepalive = 5
accesslog = None  # the app logs each execution itself
control_socket_disable = True  # unused; its default path (~/.gunicorn) is read-only in the image


class QuietAccessLogger(Logger):
    """Access lines only when `accesslog` is set: Gunicorn turns them on for any logconfig_dict
    (ours sets the service's log format), and formatting one took ~10% of its CPU per /v1/execute."""

    @property
    def access_log_enabled(self) -> bool:
        return bool(self.cfg.accesslog)


logger_class = QuietAccessLogger
# Gunicorn's own lines in the service's format too (LOG_FORMAT: readable in a terminal, else JSON lines).
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"service": {"()": "service.logs.formatter", "log_format": _settings.service.log_format}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "service", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {"gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
                # WARNING: with a logconfig_dict, INFO would log every request again beside the app's own line.
                "gunicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False}},
}


def on_starting(server):
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def when_ready(server):
    """`make run` (EXT_INSTALL_SAMPLES): install the samples once, in the master before workers start.
    A separate process, so no SQLite connection is opened in the master and inherited by forks."""
    if _settings.standalone.install_samples:
        import subprocess
        import sys

        subprocess.run([sys.executable, "-m", "flask", "--app", "app:create_app", "ext", "samples"],
                       cwd=os.path.dirname(os.path.abspath(__file__)), check=False)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """Start the background work before traffic, and drain on SIGTERM so /readyz fails first
    during a graceful shutdown."""
    from app import service_of

    lifecycle = service_of(worker.wsgi).lifecycle
    lifecycle.start()
    handle_exit = worker.handle_exit

    def draining_exit(sig, frame):
        lifecycle.drain()
        handle_exit(sig, frame)

    # Gunicorn registered its SIGTERM handler before this hook runs: register ours over it.
    signal.signal(signal.SIGTERM, draining_exit)


def worker_exit(server, worker):
    from app import service_of

    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        service_of(app).lifecycle.stop()
