"""invoke tasks: thin argument parsing over infra.* engines. `invoke --list` shows them all."""
from __future__ import annotations

import json
import sys

from invoke import task
from invoke.exceptions import Exit


def fail(message: str, code: int = 2) -> Exit:
    """A one-line error for bad input; exit code 2, nothing changed."""
    return Exit(f"error: {message}", code=code)


def require_env(env: str | None, flag: str = "--env") -> str:
    """--env must name a stack file (Pulumi.<env>.yaml); exit 2 listing the valid ones otherwise."""
    from infra.config import known_envs

    valid = known_envs()
    if env not in valid:
        what = f"{flag} is required" if not env else f"{flag} {env!r} is not a stack"
        raise fail(f"{what}; use one of: {', '.join(valid)}")
    return env


def stack_config(env: str | None):
    """Validated StackConfig for --env, or exit 2 listing every config problem."""
    from infra.config import ConfigError, load_stack_config

    require_env(env)
    try:
        return load_stack_config(env)
    except ConfigError as error:
        raise fail(error.render()) from None


@task(positional=[], help={"env": "stack to plan: dev or prod", "json": "print the plan as JSON instead of a tree",
            "diff": "another stack to compare with, e.g. --diff prod",
            "against": "git revision whose stack file counts as deployed (e.g. origin/main): refuse changing "
                       "the AMI type of a generation it has"})
def plan(c, env, json_=False, diff=None, against=None):
    """Show what the Pulumi program declares for a stack, offline (no credentials, no Pulumi CLI).

    Runs the real program under Pulumi's mock runtime: a plan of declarations, not a cloud diff
    (use `invoke preview` for that).
    """
    from rich.console import Console

    from infra import plan_view
    from infra.config import ConfigError, committed_ami_types
    from infra.plan import plan_stack

    require_env(env)
    if diff:
        require_env(diff, "--diff")
    try:
        if against:
            _refuse_generation_changes(stack_config(env), committed_ami_types(env, against))
        plans = [plan_stack(name) for name in [env, *([diff] if diff else [])]]
    except ConfigError as error:
        raise fail(error.render()) from None
    if json_:
        body = [p.to_json() for p in plans]
        print(json.dumps(body[0] if not diff else {"stacks": body, "diff": plan_view.diff(*plans)}, indent=2))
        return
    console = Console()
    if diff:
        lines = plan_view.diff(*plans)
        print("\n".join(lines))
        print(f"{len(lines)} difference(s) between {env} and {diff}")
        return
    console.print(plan_view.tree(plans[0]))
    print(plan_view.summary(plans[0]))


def _refuse_generation_changes(cfg, deployed) -> None:
    """Exit 2 when a generation that exists in `deployed` would change its AMI type in place."""
    from infra.config import check_generation_history

    issues = check_generation_history(cfg, deployed)
    if issues:
        raise fail("\n".join(str(issue) for issue in issues))


def _checked_cli(env: str):
    """Config valid and no generation changes AMI in place, against what the stack last deployed."""
    from infra.ops.pulumi_cli import PulumiCLI, PulumiError

    cfg = stack_config(env)
    cli = PulumiCLI(stack=env)
    try:
        deployed = cli.outputs().get("nodeGroupAmiTypes") or {}
    except PulumiError as error:
        raise fail(str(error)) from None
    _refuse_generation_changes(cfg, deployed)
    return cli


@task(positional=[], help={"env": "stack to preview: dev or prod"})
def preview(c, env):
    """`pulumi preview --diff` for a stack, after validating its config (needs the Pulumi CLI and AWS credentials)."""
    from infra.ops.pulumi_cli import PulumiError

    try:
        _checked_cli(env).preview()
    except PulumiError as error:
        raise fail(str(error), code=1) from None


@task(positional=[], help={"env": "stack to update: dev or prod", "yes": "do not ask for confirmation (CI)"})
def up(c, env, yes=False):
    """`pulumi up` for a stack, after validating its config (needs the Pulumi CLI and AWS credentials)."""
    from infra.ops.pulumi_cli import PulumiError

    try:
        _checked_cli(env).up(yes=yes)
    except PulumiError as error:
        raise fail(str(error), code=1) from None


def _csv(value: str) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@task(help={"only": "comma-separated checks to run: yamllint,render,schema,deprecations,rules,checkov",
            "skip": "comma-separated checks to leave out, e.g. --skip checkov for a quick pass"})
def lint(c, only="", skip=""):
    """Lint the kustomize tree (infra/k8s): yamllint, render every overlay, schema-validate against each stack's
    Kubernetes version, scan for removed/deprecated APIs, checkov (own venv, created on first run) and the
    workload rules. One table of findings; exit 1 on any error."""
    from rich.console import Console

    from infra.ops import lint as engine
    from infra.ops.findings import table

    try:
        checks = engine.select(_csv(only), _csv(skip))
    except ValueError as error:
        raise fail(str(error)) from None
    console = Console()
    with console.status("lint") as status:
        report = engine.run(checks=checks, say=lambda step: status.update(f"lint: {step}"))
    if report.findings:
        console.print(table(report.findings))
    if report.failed:
        raise Exit(report.summary, code=1)
    console.print(report.summary)


@task(positional=["name"], help={"name": "service name: lowercase letters, digits, '-' (DNS-1123), e.g. billing",
                                 "kind": "http (Deployment+Service+Ingress+HPA), worker (queue consumer) or cron "
                                         "(CronJob)", "dry_run": "show what would be written, change nothing"})
def new_service(c, name, kind=None, dry_run=False):
    """Scaffold infra/k8s/base/NAME and its overlay entries with every workload default; passes `invoke lint`."""
    from infra.ops import scaffold

    try:
        changes = scaffold.plan(name, kind or "")
    except scaffold.ScaffoldError as error:
        raise fail(str(error)) from None
    print("\n".join(scaffold.describe(changes)))
    if dry_run:
        print("dry run: nothing written")
        return
    scaffold.apply(changes)
    print(f"service {name} ({kind}) scaffolded; next: `invoke lint`, then build the image with /healthz and /readyz")

if __name__ == "__main__":  # pragma: no cover - `python tasks.py` is not how tasks run
    sys.exit("run tasks with `invoke`, e.g. `invoke --list`")
