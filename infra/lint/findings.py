"""A lint finding: where (file, resource), which rule, what is wrong and how to fix it; one table for all checks."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, order=True)
class Finding:
    """One problem reported by one check. Errors fail lint; warnings are shown and do not."""

    file: str
    resource: str
    rule: str
    problem: str
    fix: str
    severity: str = ERROR

    @property
    def failed(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        where = f"{self.file} {self.resource}".strip()
        return f"{self.severity}: {where}: [{self.rule}] {self.problem} -> {self.fix}"


def table(findings: Iterable[Finding], title: str = "lint findings") -> Table:
    """Every finding in one table, errors first, grouped by file."""
    view = Table(title=title, show_lines=False, expand=False)
    for column in ("", "File", "Resource", "Rule", "Problem", "Fix"):  # a rule id stays whole: it is searched for
        view.add_column(column, overflow="fold", no_wrap=column == "Rule")
    for f in sorted(findings, key=lambda f: (not f.failed, f.file, f.resource, f.rule, f.problem)):
        mark = "[red]✗[/red]" if f.failed else "[yellow]![/yellow]"
        # Text cells: a message is shown as written, never read as rich markup or emoji ("[ALL]", ":x:").
        view.add_row(mark, *(Text(cell) for cell in (f.file, f.resource, f.rule, f.problem, f.fix)))
    return view
