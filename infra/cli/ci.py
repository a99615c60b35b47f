"""`invoke ci.*`: the GitHub Actions workflows and composite actions, checked."""
from __future__ import annotations

import json

from invoke import Collection
from invoke.exceptions import Exit

from infra.cli.common import console, task


@task(name="check", help={"json": "print the findings as JSON instead of a table"})
def ci_check(c, json_=False):
    """Check the .github/ workflows and composite actions: actionlint, zizmor (offline), GitHub's JSON schemas and
    the project's rules (SHA pins with version comments, job timeouts and permissions, queued deploys, a CD matrix
    covering every service). One table of findings; exit 1 on any. Also part of `invoke lint`."""
    from dataclasses import asdict

    from infra.lint import workflows as engine
    from infra.lint.findings import table

    findings = engine.check()
    if json_:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    elif findings:
        console().print(table(findings, "workflow findings"))
    if any(f.failed for f in findings):
        raise Exit(engine.summary(findings), code=1)
    if not json_:
        print(engine.summary(findings))



ns = Collection("ci", ci_check)
