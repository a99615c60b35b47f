"""JSON logs on stdout, one object per line, whose level follows the mounted logging config without a restart.

The format is fixed here (the node agent parses it); the logging-config ConfigMap decides only the levels:
`root.level` and `loggers.<name>.level` of its dictConfig YAML. The file is polled, not watched with inotify:
a ConfigMap volume updates by swapping a symlink, which inotify watchers of the file itself miss.
"""
from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import yaml

_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)
LOG_CONFIG = "LOG_CONFIG"
POLL_SECONDS = "LOG_CONFIG_POLL_SECONDS"
log = logging.getLogger("service_kit")


@contextmanager
def trace(trace_id: str | None) -> Iterator[None]:
    """Every log line inside carries `trace_id` (a request's traceparent, a message's ID)."""
    token = _trace_id.set(trace_id)
    try:
        yield
    finally:
        _trace_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; an exception is a field of that object, never extra lines."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "service": self.service, "logger": record.name,
                 "message": record.getMessage()}
        trace_id = getattr(record, "trace_id", None) or _trace_id.get()
        if trace_id:
            entry["trace_id"] = trace_id
        for key, value in (getattr(record, "fields", None) or {}).items():
            entry.setdefault(key, value)
        if record.exc_info and record.exc_info[0] is not None:
            kind, error, tb = record.exc_info
            entry["error"] = {"type": kind.__name__, "message": str(error),
                              "stack": traceback.format_exception(kind, error, tb)}
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(service: str, stream=None) -> LevelWatcher:
    """Root logs JSON to stdout; uncaught exceptions (any thread) are logged as one object; levels follow
    LOG_CONFIG (polled every LOG_CONFIG_POLL_SECONDS, default 5). Returns the running watcher."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)

    def uncaught(kind, error, tb) -> None:
        logging.getLogger(service).critical("uncaught exception", exc_info=(kind, error, tb))

    sys.excepthook = uncaught
    threading.excepthook = lambda args: uncaught(args.exc_type, args.exc_value, args.exc_traceback)
    watcher = LevelWatcher(os.environ.get(LOG_CONFIG, ""), float(os.environ.get(POLL_SECONDS) or 5))
    watcher.apply()
    watcher.start()
    return watcher


def levels(text: str) -> dict[str, str]:
    """Logger name ("" for root) -> level name, from a logging dictConfig YAML."""
    doc = yaml.safe_load(text) or {}
    if not isinstance(doc, dict):
        raise ValueError("the logging config is not a mapping")
    found = {}
    root = doc.get("root") or {}
    if isinstance(root, dict) and root.get("level"):
        found[""] = str(root["level"]).upper()
    for name, spec in (doc.get("loggers") or {}).items():
        if isinstance(spec, dict) and spec.get("level"):
            found[str(name)] = str(spec["level"]).upper()
    unknown = [level for level in found.values() if not isinstance(logging.getLevelName(level), int)]
    if unknown:
        raise ValueError(f"unknown log level {unknown[0]!r}")
    return found


class LevelWatcher(threading.Thread):
    """Re-applies the config's levels whenever the file's content changes; a bad file keeps the last levels."""

    def __init__(self, path: str, every_s: float) -> None:
        super().__init__(name="log-level-watcher", daemon=True)
        self.path = Path(path) if path else None
        self.every_s = every_s
        self.digest = ""
        self.stopped = threading.Event()

    def apply(self) -> bool:
        """Apply the file's levels if it changed since last time; True when levels were (re)applied."""
        if self.path is None:
            return False
        try:
            text = self.path.read_text()
        except OSError as error:
            if self.digest != "missing":
                log.warning("log config %s unreadable (%s); keeping the current levels", self.path, error)
            self.digest = "missing"
            return False
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest == self.digest:
            return False
        self.digest = digest
        try:
            wanted = levels(text)
        except (ValueError, yaml.YAMLError) as error:
            log.warning("log config %s not applied (%s); keeping the current levels", self.path,
                        str(error).splitlines()[0])
            return False
        for name, level in wanted.items():
            logging.getLogger(name or None).setLevel(level)
        log.warning("log levels applied from %s: %s", self.path,
                    ", ".join(f"{name or 'root'}={level}" for name, level in sorted(wanted.items())))
        return True

    def run(self) -> None:
        # Started before Shutdown.install() blocks these in the threads it precedes: never take them here.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        while self.path is not None and not self.stopped.wait(self.every_s):
            self.apply()
