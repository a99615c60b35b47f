"""`invoke cluster.*`: sequential Kubernetes version upgrades."""
from __future__ import annotations

from invoke import Collection

from infra.cli.common import KUBE_HELP, console, fail, kube_for, printer, stack_config, task
from infra.cli.flags import long_only


@task(name="upgrade", positional=[], help={
    "env": "stack: dev or prod",
    "to": "target Kubernetes version, e.g. 1.36 (one-minor steps are planned); without it --plan-only and --dry-run "
          "propose the nearest version in EKS standard support",
    "plan-only": "print the playbook as Markdown (steps, preflight, actions) and stop",
    "dry-run": "print the steps and the preflight table, change nothing",
    "resume": "continue an interrupted upgrade from its checkpoint", "kubeconfig": KUBE_HELP})
def cluster_upgrade(c, env=None, to=None, plan_only=False, dry_run=False, resume=False, kubeconfig=None):
    """Sequential Kubernetes upgrade: control plane, node groups, add-ons, verify - one minor at a time.

    Every step is preflighted (removed APIs, add-on builds, kubelet skew, AL2, EKS insights, subnet IPs)
    and printed as one table; any FAIL stops before a change. Progress is checkpointed for --resume.
    """
    from infra.ops.io.eks import Eks
    from infra.ops.io.pulumi_cli import PulumiCLI
    from infra.ops.io.stack_file import StackFile
    from infra.ops.lifecycle.preflight import table
    from infra.ops.lifecycle.upgrade import Upgrade, UpgradeRequest

    if not to and not (plan_only or dry_run):
        raise fail("--to is required, e.g. `invoke cluster.upgrade --env dev --to 1.36` (--plan-only without --to "
                   "proposes the version that reaches EKS standard support)")
    if resume and (dry_run or plan_only):
        raise fail("--resume carries out the rest of an upgrade; --dry-run and --plan-only only show it: drop one")
    request = UpgradeRequest(env=env, to=to or None, resume=resume, plan_only=plan_only,  # checks --to
                             dry_run=dry_run)
    kube, cfg = kube_for(env, kubeconfig)
    console, on_event = printer()
    engine = Upgrade(request, cfg, StackFile(env), Eks(cfg.region), kube, PulumiCLI(stack=env), on_event=on_event)
    plan = engine.plan()
    if request.plan_only:
        print(plan.playbook())
        return
    console.print(f"{plan.cluster}: {' -> '.join([str(plan.current), *(str(s.target) for s in plan.steps)])}")
    for step in plan.steps:
        console.print(table(step.checks, f"preflight {step.source} -> {step.target}"))
    if not plan.steps:
        console.print(f"{plan.cluster} already runs {plan.current}; nothing to do")
        return
    if request.dry_run:
        if plan.blocked:
            failing = ", ".join(f"{step.target}: {check.check}" for step, check in plan.blocked)
            raise fail(f"dry run, nothing changed: {len(plan.blocked)} preflight check(s) FAIL ({failing}); the "
                       f"upgrade would stop before any change", code=1)
        console.print("dry run: nothing changed")
        return
    engine.execute(plan)



# --- cluster.versions: the EKS version calendar -----------------------------------------------------------------

@task(name="versions", positional=[], klass=long_only("refresh"), help={
    "refresh": "read EKS's own calendar (DescribeClusterVersions; needs AWS credentials) and show where it differs",
    "env": "stack whose region --refresh asks (default: the AWS region of the environment)"})
def cluster_versions(c, refresh=False, env=None):
    """The EKS version calendar: release, end of standard and extended support, AL2 AMIs, support on today's date.

    Every version judgement (config validation, plan/preview/up warnings, upgrade targets) reads this table;
    EKS_PLATFORM_TODAY=YYYY-MM-DD judges it as of another day.
    """
    import sys

    from infra import eks_calendar

    try:
        today = eks_calendar.today()
    except eks_calendar.BadToday as error:
        raise fail(str(error)) from None
    calendar, differences = eks_calendar.CALENDAR, []
    if refresh:
        from infra.ops.io.eks import cluster_versions as eks_versions

        region = _region(env)
        fetched = eks_versions(region, fetched=today)
        differences = eks_calendar.differences(calendar, fetched)
        calendar = calendar.merged(fetched)
    table, sources = _calendar_table(calendar, today)
    shown = console(width=None if sys.stdout.isatty() else 120)  # a pipe gets the whole table, not 80 columns
    shown.print(table)
    for number, source in enumerate(sources, 1):
        print(f"[{number}] {source}")
    for line in differences:
        print(f"differs from infra/eks_calendar.py: {line}")
    print(eks_calendar.cost_line(today))


def _calendar_table(calendar, today):
    """The table, and the distinct sources its rows cite by number (a source is a sentence, not a column)."""
    from rich.markup import escape
    from rich.table import Table

    from infra.eks_calendar import Support

    table = Table(title=f"EKS Kubernetes versions on {today}")
    for column in ("version", "EKS release", "end of standard", "end of extended", "AL2 AMIs", "today", "source"):
        table.add_column(column, no_wrap=column in ("today", "source"))
    styles = {Support.STANDARD: "green", Support.EXTENDED: "yellow", Support.ENDED: "red", Support.UNRELEASED: "dim"}
    sources: list[str] = []
    for release in sorted(calendar.releases, key=lambda r: r.minor, reverse=True):
        support = release.support(today)
        days = release.days_left(today)
        state = support.value + (f" ({days} days left)" if days is not None else "")
        if release.source not in sources:
            sources.append(release.source)
        cited = f"[{sources.index(release.source) + 1}]" + (" estimated" if release.estimated else "")
        table.add_row(release.version, str(release.released), str(release.end_of_standard),
                      str(release.end_of_extended), "yes" if release.al2 else "no",
                      f"[{styles[support]}]{state}[/]", escape(cited))
    return table, sources


def _region(env):
    """--env's region, else the AWS region of the environment; exit 2 when neither names one."""
    if env:
        return stack_config(env).region
    import boto3

    region = boto3.session.Session().region_name
    if not region:
        raise fail("--refresh needs a region: pass --env dev (its aws:region) or set AWS_REGION")
    return region


ns = Collection("cluster", cluster_upgrade, cluster_versions)
