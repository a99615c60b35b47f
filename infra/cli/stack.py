"""`invoke plan|preview|up`: the Pulumi program for one stack, offline under mocks or through the Pulumi CLI."""
from __future__ import annotations

import json
import sys

from invoke import Collection

from infra.cli.common import confirm, console, fail, require_env, stack_config, task

# The project's CrossGuard pack (relative to the project directory pulumi runs in): every resource of a preview
# or update is checked by the same rules `invoke plan` evaluates offline (docs/policy.md).
POLICY_PACK = "infra/policy"


@task(positional=[], help={"env": "stack to plan: dev or prod", "json": "print the plan as JSON instead of a tree",
            "diff": "another stack to compare with, e.g. --diff prod",
            "against": "git revision whose stack file counts as deployed (e.g. origin/main): refuse changing "
                       "the AMI type of a generation it has"})
def plan(c, env, json_=False, diff=None, against=None):
    """Show what the Pulumi program declares for a stack, offline (no credentials, no Pulumi CLI), and the policy
    pack's verdict on it (exit 1 on a mandatory violation).

    Runs the real program under Pulumi's mock runtime: a plan of declarations, not a cloud diff
    (use `invoke preview` for that, which runs the same policy pack).
    """
    from dataclasses import asdict

    from infra.lint.findings import table
    from infra.plan import view as plan_view
    from infra.plan.offline import plan_stack
    from infra.plan.verdict import findings, judge, verdict_line

    require_env(env)
    if diff:
        require_env(diff, "--diff")
        if diff == env:
            raise fail(f"--diff {diff} compares {env} with itself; name the other stack, e.g. --diff "
                       f"{'prod' if env != 'prod' else 'dev'}")
    if against is not None:
        _refuse_generation_changes(stack_config(env), _deployed_ami_types(env, against))
    plans = [plan_stack(name) for name in [env, *([diff] if diff else [])]]
    for name in [env, *([diff] if diff else [])]:
        _warn(stack_config(name))
    if diff:
        lines = plan_view.diff(*plans)
        if json_:
            print(json.dumps({"stacks": [p.to_json() for p in plans], "diff": lines}, indent=2))
        else:
            print("\n".join(lines))
            print(f"{len(lines)} difference(s) between {env} and {diff}")
        return
    violations = judge(plans[0])
    if json_:
        print(json.dumps({**plans[0].to_json(), "policy": [asdict(v) for v in violations]}, indent=2))
    else:
        shown = console()
        shown.print(plan_view.tree(plans[0]))
        print(plan_view.summary(plans[0]))
        if violations:
            shown.print(table(findings(plans[0], violations), "policy violations (infra/policy)"))
        print(verdict_line(violations))
    mandatory = sum(v.mandatory for v in violations)
    if mandatory:
        raise fail(f"stack {env} has {mandatory} mandatory policy violation(s) (listed above); fix them before "
                   f"`invoke up` (docs/policy.md)", code=1)


def _deployed_ami_types(env: str, rev: str):
    """AMI types of Pulumi.<env>.yaml at git revision `rev`, resolved to a commit first, so a revision that looks
    like an option (`--against=--output=x`) never reaches git as one; a stack file there that is not YAML, or not
    a stack file's shape, is a ConfigError naming the revision and the file (exit 2)."""
    import subprocess

    from ruamel.yaml import YAMLError

    from infra.config import ROOT, ConfigError, ConfigIssue, committed_ami_types, stack_file

    try:
        done = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
                              cwd=ROOT, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise fail("git not found on PATH; install git or leave --against out") from None
    if done.returncode != 0:
        raise fail(f"--against {rev!r} is not a commit in this repository; name a commit or branch, e.g. "
                   f"--against origin/main")
    source = f"{stack_file(env).name} at {rev}"
    try:
        return committed_ami_types(env, done.stdout.strip())
    except YAMLError as error:
        problem = f"not valid YAML: {error}".replace("\n", " ")
    except (AttributeError, TypeError):  # valid YAML, but `config:`, node_pools or generations is not a map
        problem = "not a stack file's shape: config, its node_pools and each pool's generations must be maps"
    raise ConfigError(source, [ConfigIssue(key="(file)", problem=problem)])


def _refuse_generation_changes(cfg, deployed) -> None:
    """Exit 2 when a generation that exists in `deployed` would change its AMI type in place."""
    from infra.config import check_generation_history

    issues = check_generation_history(cfg, deployed)
    if issues:
        raise fail("\n".join(str(issue) for issue in issues))


def _warn(cfg) -> None:
    """What a valid config still tells its owner (extended-support cost, EKS auto-upgrades), on stderr."""
    from infra.config import stack_warnings

    for line in stack_warnings(cfg):
        print(f"warning: {line}", file=sys.stderr)


def _checked_cli(env: str, creating: bool = False):
    """Config valid, no generation changes AMI in place, the auth mode does not go back and the Kubernetes version
    moves at most one minor forward, against what the stack last deployed. `creating` (up): a stack with no cluster
    yet is created only by the principal its config names (infra.ops.creator)."""
    from infra.config import check_auth_mode_history, check_version_history
    from infra.ops.errors import Refused
    from infra.ops.io.pulumi_cli import PulumiCLI, PulumiError

    cfg = stack_config(env)
    cli = PulumiCLI(stack=env)
    try:
        outputs = cli.outputs()
    except PulumiError as error:  # what the stack deployed cannot be read, so nothing can be checked: run nothing
        raise Refused(str(error)) from None
    _refuse_generation_changes(cfg, outputs.get("nodeGroupAmiTypes") or {})
    issues = [*check_auth_mode_history(cfg, outputs.get("authenticationMode")),
              *check_version_history(cfg, outputs.get("clusterVersion"))]
    if issues:
        raise fail("\n".join(str(issue) for issue in issues))
    _warn(cfg)
    if creating and not outputs.get("clusterName"):
        from infra.ops import creator

        creator.check_first_up(cfg, creator.caller_arn(cfg.region))
    return cli


@task(positional=[], help={"env": "stack to preview: dev or prod"})
def preview(c, env):
    """`pulumi preview --diff` for a stack, after validating its config (needs the Pulumi CLI and AWS credentials)."""
    _checked_cli(env).preview(policy_packs=[POLICY_PACK])


@task(positional=[], help={"env": "stack to update: dev or prod",
                           "yes": "apply without showing the preview and asking (CI; required without a terminal)"})
def up(c, env, yes=False):
    """`pulumi up` for a stack, after validating its config (needs the Pulumi CLI and AWS credentials).

    On a terminal it shows the preview and asks before applying; without one it needs --yes (exit 2 otherwise).
    """
    from infra.ops.io.pulumi_cli import ConfirmationNeeded

    if not yes and not sys.stdin.isatty():
        require_env(env)
        raise ConfirmationNeeded(env)
    _checked_cli(env, creating=True).up(yes=yes, confirm=lambda: confirm(f"Apply this preview to stack {env}?"),
                                        policy_packs=[POLICY_PACK])



ns = Collection(plan, preview, up)
