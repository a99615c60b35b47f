"""`invoke lint|new-service`: the repository's own checks and the service scaffold."""
from __future__ import annotations

from invoke import Collection
from invoke.exceptions import Exit

from infra.cli.common import console, csv_list, fail, help_if_asked, task


@task(help={"only": "comma-separated checks to run: yamllint,render,schema,deprecations,rules,checkov,dockerfiles,"
                    "policy,workflows",
            "skip": "comma-separated checks to leave out, e.g. --skip checkov for a quick pass"})
def lint(c, only=None, skip=None):
    """Lint the kustomize tree (infra/k8s): yamllint, render every overlay, schema-validate against each stack's
    Kubernetes version, scan for removed/deprecated APIs, checkov (own venv, created on first run) and the
    workload rules; hadolint on the services' Dockerfiles; the policy pack over each stack's offline plan
    (mandatory violations are errors); and the
    .github/ workflows (`invoke ci.check`). One table of findings; exit 1 on any error."""

    from infra.lint import runner as engine
    from infra.lint import workflows as ci_check
    from infra.lint.findings import table

    for flag, given in (("--only", only), ("--skip", skip)):
        if given is not None and not csv_list(given):  # `--only ,`: a list that names nothing is not "all"
            raise fail(f"{flag} {given!r} names no check; list checks separated by commas, e.g. {flag} rules,schema")
    selected = engine.select(csv_list(only), csv_list(skip), known=(*engine.CHECKS, ci_check.NAME))  # exit 2 when bad
    checks = tuple(name for name in selected if name != ci_check.NAME)
    workflows = ci_check.start() if ci_check.NAME in selected else None
    shown = console()
    with shown.status("lint") as status:
        report = engine.run(checks=checks, say=lambda step: status.update(f"lint: {step}"))
        if workflows is not None:
            status.update(f"lint: {ci_check.NAME}")
            report.findings += workflows.result()
            report.checks += (ci_check.NAME,)
    if report.findings:
        shown.print(table(report.findings))
    if report.failed:
        raise Exit(report.summary, code=1)
    shown.print(report.summary)


@task(positional=["name"], help={"name": "service name: lowercase letters, digits, '-' (DNS-1123), e.g. billing",
                                 "kind": "http (Deployment+Service+Ingress+HPA), worker (queue consumer) or cron "
                                         "(CronJob)", "dry_run": "show what would be written, change nothing"})
def new_service(c, name, kind=None, dry_run=False):
    """Scaffold services/NAME (code and Dockerfile, from the reference service of its kind), infra/k8s/base/NAME and
    its overlay and CD entries; passes `invoke lint` and `invoke service.check NAME` as generated."""
    from infra.lint import scaffold

    help_if_asked(name, "new-service")
    changes = scaffold.plan(name, kind or "")
    print("\n".join(scaffold.describe(changes)))
    if dry_run:
        print("dry run: nothing written")
        return
    scaffold.apply(changes)
    print(f"service {name} ({kind}) scaffolded from services/{scaffold.REFERENCE[kind]}; next: `invoke lint` and "
          f"`invoke service.check {name}`, then replace the example work in services/{name}")



ns = Collection(lint, new_service)
