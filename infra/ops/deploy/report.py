"""What a deploy prints while it runs: rich progress on a terminal, one structured line per fact otherwise.

CI logs and `--json-logs` get `key=value` (or JSON) lines that grep and log shippers can parse; a person
at a terminal gets a live line with the replica counts. Callers pass facts, never secrets.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from infra.ops.deploy.rollout import Progress


def _plain(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or "=" in text or not text) else text


@dataclass
class Reporter:
    """mode: "rich" (terminal), "plain" (key=value lines) or "json" (one JSON object per line)."""

    mode: str = "plain"
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    _status: Any = field(default=None, init=False)
    _console: Console | None = field(default=None, init=False)

    @classmethod
    def for_terminal(cls, json_logs: bool = False, stream: TextIO | None = None) -> Reporter:
        stream = stream or sys.stdout
        mode = "json" if json_logs else ("rich" if stream.isatty() else "plain")
        return cls(mode=mode, stream=stream)

    @property
    def console(self) -> Console:
        if self._console is None:
            # emoji=False: a `:name:` in a message (Slack shortcodes, image refs) is printed as written.
            self._console = Console(file=self.stream, highlight=False, emoji=False)
        return self._console

    def event(self, name: str, message: str = "", **facts: Any) -> None:
        """One fact about the deploy: e.g. event("apply", "applied 7 objects", objects=7)."""
        if self.mode == "json":
            record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": name,
                      **({"message": message} if message else {}), **facts}
            print(json.dumps(record, default=str), file=self.stream, flush=True)
        elif self.mode == "rich":
            self.console.print(f"[bold]{name}[/bold] {escape(message)}".rstrip(), markup=True)
        else:
            parts = [f"event={name}", *(f"{k}={_plain(v)}" for k, v in facts.items())]
            if message:
                parts.append(f"message={_plain(message)}")
            print(" ".join(parts), file=self.stream, flush=True)

    def progress(self, label: str, progress: Progress) -> None:
        """Replica counts as they change: a live status line on a terminal, a line each otherwise."""
        if self.mode == "rich":
            text = escape(f"{label}: {progress}")
            if self._status is None:
                self._status = self.console.status(text)
                self._status.start()
            else:
                self._status.update(text)
            return
        self.event("progress", str(progress), rollout=label, desired=progress.desired, updated=progress.updated,
                   ready=progress.ready, available=progress.available, old=progress.old)

    def done(self) -> None:
        """End a live progress line (before printing a verdict)."""
        if self._status is not None:
            self._status.stop()
            self._status = None
