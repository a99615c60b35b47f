"""`invoke service.*`: the service contract (docs/service-contract.md) checked against a running service."""
from __future__ import annotations

from invoke import Collection
from invoke.exceptions import Exit

from infra.cli.common import console, help_if_asked, task


@task(name="check", positional=["svc"], help={"svc": "a service under services/ (e.g. api, worker, scheduler)"})
def service_check(c, svc):
    """Run SVC and check the service contract: manifests (probes, grace period, GRACE_SECONDS, non-root read-only
    image, CronJob concurrency), then live: /healthz with its dependencies down, /readyz 503 then 200 once they are
    up, JSON log lines, /metrics, SIGTERM with work in flight (finished inside the grace period, or given back by
    the deadline). Runs the container where a Docker engine answers, else the process from services/SVC; starts
    PostgreSQL/RabbitMQ (Debian packages) on free ports. One table of rules; exit 1 on any failure, 2 for an
    unknown service."""
    from rich.table import Table
    from rich.text import Text

    from infra.ops.io.manifests import REPO
    from infra.ops.service import check as engine

    help_if_asked(svc, "service.check")
    shown = console()
    with shown.status(f"service.check {svc}") as status:
        report = engine.run_check(REPO, svc, say=lambda step: status.update(f"service.check {svc}: {step}"))
    view = Table(title=f"service contract: {svc} (run as a {report.how})")
    for column in ("", "Rule", "Detail"):
        view.add_column(column, overflow="fold")
    for result in report.results:
        view.add_row("[green]pass[/green]" if result.ok else "[red]FAIL[/red]", Text(result.rule), Text(result.detail))
    shown.print(view)
    if report.how == "process":
        shown.print("no Docker engine answered: ran the process from services/ (the image rules are read from its "
                      "Dockerfile)")
    if not report.ok:
        raise Exit(f"service.check {svc} FAILED: {', '.join(report.failed())}", code=1)
    shown.print(f"service.check {svc} passed: {len(report.results)} rules")


ns = Collection("service", service_check)
