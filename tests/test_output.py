"""Output people can read: log lines as text in a terminal and JSON elsewhere (LOG_FORMAT forces
either, Gunicorn's own lines included), and progress of long steps (a spinner in a terminal,
plain lines otherwise). Terminals are real pseudo-terminals (os.openpty)."""
from __future__ import annotations

import io
import json
import logging
import os
import re
import time

import pytest
from helpers import free_port, start_gunicorn, stop_process

from service import logs
from service.progress import LinesProgress, LoggedProgress, SpinnerProgress, for_stream


@pytest.fixture
def terminal():
    """A text stream on the slave side of a pseudo-terminal, and a reader of what it shows."""
    master, slave = os.openpty()
    stream = os.fdopen(slave, "w", buffering=1, encoding="utf-8")
    os.set_blocking(master, False)

    def shown() -> str:
        chunks = []
        while True:
            try:
                chunks.append(os.read(master, 65536))
            except BlockingIOError:
                return b"".join(chunks).decode("utf-8", "replace")

    yield stream, shown
    stream.close()
    os.close(master)


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def record(**extra) -> logging.LogRecord:
    r = logging.LogRecord("runner.executor", logging.WARNING, __file__, 1, "execute %s", ("done",), None)
    r.__dict__.update(extra)
    return r


def test_text_lines_put_the_ids_first():
    line = logs.TextFormatter().format(record(status=200, request="req-1", tenant="t-1", note="two words"))
    assert re.fullmatch(r'\d\d:\d\d:\d\d\.\d{3} warn  runner\.executor  execute done  '
                        r'tenant=t-1 request=req-1 status=200 note="two words"', line), line


def test_json_lines_are_unchanged():
    doc = json.loads(logs.JsonFormatter().format(record(tenant="t-1")))
    assert (doc["level"], doc["logger"], doc["msg"], doc["tenant"]) == ("warning", "runner.executor", "execute done",
                                                                         "t-1")


def test_auto_means_text_in_a_terminal_and_json_elsewhere(terminal, restore_logging):
    stream, shown = terminal
    assert logs.configure("info", "auto", stream) == "text"
    logging.getLogger("x").info("hello", extra={"tenant": "t"})
    assert re.search(r"info .*x.*hello.*tenant=t", shown())
    pipe = io.StringIO()
    assert logs.configure("info", "auto", pipe) == "json"
    logging.getLogger("x").info("hello")
    assert json.loads(pipe.getvalue())["msg"] == "hello"
    assert logs.configure("info", "text", pipe) == "text" and logs.configure("info", "json", stream) == "json"


def test_log_format_setting_refuses_unknown_values(monkeypatch):
    from settings import Settings

    monkeypatch.setenv("LOG_FORMAT", "pretty")
    assert Settings.from_env().service.log_format == "auto"
    monkeypatch.setenv("LOG_FORMAT", " TEXT ")
    assert Settings.from_env().service.log_format == "text"


@pytest.mark.slow
def test_gunicorn_and_the_service_write_text_when_forced(tmp_path, shared_dirs):
    env = {"PORT": str(free_port()), "LOG_FORMAT": "text", "EXT_CACHE_ROOT": str(shared_dirs["cache"]),
           "EXT_REGISTRY_DB": str(tmp_path / "r.db"), "EXT_WORKERS": "1", "EXT_SCHEDULER_ENABLED": "false"}
    proc, base = start_gunicorn(env, tmp_path / "out.log")
    try:
        import requests

        requests.post(f"{base}/v1/execute", json={}, timeout=10)
    finally:
        stop_process(proc)
    lines = (tmp_path / "out.log").read_text().splitlines()
    assert any(re.match(r"\d\d:\d\d:\d\d\.\d{3} info  gunicorn\.error  Booting worker", line) for line in lines)
    assert not any(line.startswith("{") for line in lines), lines[:5]


def test_a_spinner_in_a_terminal_shows_the_elapsed_time(terminal):
    stream, shown = terminal
    progress = for_stream(stream)
    assert isinstance(progress, SpinnerProgress)
    with progress.step("compiling the component"):
        time.sleep(0.5)
    text = shown()
    assert re.search(r"\r\x1b\[K[⠙⠹⠸⠼] compiling the component \d+\.\d s", text)  # redrawn while it runs
    assert re.search(r"✓ compiling the component \(\d+\.\d s\)\r?\n$", text)
    with pytest.raises(ValueError), progress.step("npm run build"):
        raise ValueError("broken")
    assert re.search(r"✗ npm run build failed after \d+\.\d s", shown())


def test_plain_lines_elsewhere():
    out = io.StringIO()
    progress = for_stream(out)
    assert isinstance(progress, LinesProgress)
    with progress.step("fetching and extracting the bundle"):
        pass
    progress.note("a note")
    assert re.fullmatch(r"fetching and extracting the bundle \.\.\.\n"
                        r"fetching and extracting the bundle: done in \d+\.\d s\na note\n", out.getvalue())


def test_logged_progress(caplog):
    with caplog.at_level(logging.INFO), LoggedProgress(logging.getLogger("p"), tenant="t").step("compiling"):
        pass
    assert [r.getMessage() for r in caplog.records] == ["compiling", "compiling: done"]
    assert caplog.records[1].tenant == "t" and isinstance(caplog.records[1].ms, int)
