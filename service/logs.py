"""Structured logging: JSON lines for machines, one readable line each for people.

``log.info("msg", extra={"tenant": ...})`` puts the extra keys into the line. ``LOG_FORMAT``
picks the format: ``auto`` (the default) writes readable text when stderr is a terminal and
JSON lines otherwise (a pipe, a file, a container log), ``json`` and ``text`` force one.
Worker processes and Gunicorn's own loggers (gunicorn.conf.py) use the same formatters, so
every line of the service has the same shape, wherever it was written.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import TextIO

# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

# Level names as the reference and guests use them (trace, warn) mapped to logging's.
LEVELS = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL}
FORMATS = ("auto", "json", "text")

# In text lines the ids that tie a line to an execution come first, in this order; the install and
# version ids follow from them and stay in the JSON lines only.
_IDS = ("tenant", "extension", "request")
_JSON_ONLY = ("install", "version")
_COLORS = {"debug": "\x1b[2m", "info": "\x1b[32m", "warn": "\x1b[33m", "error": "\x1b[31m", "critical": "\x1b[1;31m"}
_DIM, _RESET = "\x1b[2m", "\x1b[0m"


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


def _level(record: logging.LogRecord) -> str:
    return "warn" if record.levelno == logging.WARNING else record.levelname.lower()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        line.update(_extras(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``14:03:22.123 info  runner.executor  execute  tenant=… extension=… status=200 ms=3.2``:
    local time, level, logger, message, then the ids and the other extra fields."""

    def __init__(self, color: bool = False):
        super().__init__()
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        level = _level(record)
        extras = {k: v for k, v in _extras(record).items() if k not in _JSON_ONLY}
        ordered = [k for k in _IDS if k in extras] + [k for k in extras if k not in _IDS]
        fields = " ".join(f"{k}={_value(extras[k])}" for k in ordered if extras[k] not in (None, ""))
        if self.color:
            head = f"{_DIM}{ts}{_RESET} {_COLORS.get(level, '')}{level:5}{_RESET} {_DIM}{record.name}{_RESET}"
        else:
            head = f"{ts} {level:5} {record.name}"
        line = f"{head}  {record.getMessage()}" + (f"  {_DIM if self.color else ''}{fields}"
                                                   f"{_RESET if self.color else ''}" if fields else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _value(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return json.dumps(text, ensure_ascii=False) if not text or any(c.isspace() or c in "\"=" for c in text) else text


def is_terminal(stream: TextIO | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed, or not a real file
        return False


def resolve(fmt: str, stream: TextIO | None = None) -> str:
    """``json`` or ``text``: ``auto`` means text when ``stream`` (default stderr) is a terminal."""
    fmt = (fmt or "auto").strip().lower()
    if fmt in ("json", "text"):
        return fmt
    return "text" if is_terminal(sys.stderr if stream is None else stream) else "json"


def formatter(log_format: str = "auto", stream: TextIO | None = None) -> logging.Formatter:
    """The formatter for ``log_format`` on ``stream`` (also the factory gunicorn.conf.py names)."""
    stream = sys.stderr if stream is None else stream
    if resolve(log_format, stream) == "json":
        return JsonFormatter()
    return TextFormatter(color=is_terminal(stream) and "NO_COLOR" not in os.environ)


def configure(level: str = "info", log_format: str = "auto", stream: TextIO | None = None) -> str:
    """Route the root logger to ``stream`` (stderr) in ``log_format``; returns the format used
    (``json`` or ``text``), for processes started from this one. Idempotent; an unknown level means info."""
    stream = sys.stderr if stream is None else stream
    wanted = formatter(log_format, stream)
    root = logging.getLogger()
    if not any(type(h.formatter) is type(wanted) and getattr(h, "stream", None) is stream for h in root.handlers):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(wanted)
        root.handlers[:] = [handler]
    root.setLevel(LEVELS.get(level.strip().lower(), logging.INFO))
    text = isinstance(wanted, TextFormatter)
    for noisy in ("urllib3", "botocore", "boto3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # `flask run` in a terminal: werkzeug's "Running on http://..." and its request lines are for people.
    logging.getLogger("werkzeug").setLevel(logging.NOTSET if text else logging.WARNING)
    return "text" if text else "json"
