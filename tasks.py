"""invoke tasks: thin argument parsing over infra.* engines. `invoke --list` shows them all."""
from __future__ import annotations

import functools
import json
import os
import sys

from invoke import Collection
from invoke import task as invoke_task
from invoke.exceptions import Exit

if {"-l", "--list", "-h", "--help"} & set(sys.argv):  # listing and help do no I/O but print: `| head` ends quietly
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def fail(message: str, code: int = 2) -> Exit:
    """A one-line error for bad input; exit code 2, nothing changed."""
    return Exit(f"error: {message}", code=code)


def _waits_shown():
    """Retry waits (an unreachable API server, AWS throttling) as a spinner on stderr, only when it is a terminal."""
    if not sys.stderr.isatty():
        import contextlib

        return contextlib.nullcontext()
    from infra.ops.retry import shown_on

    return shown_on(sys.stderr)


def task(*args, **kwargs):
    """invoke's @task around a body that keeps the exit-code contract (infra.ops.errors): an engine error or a
    known outside failure (no credentials, unreachable API, 401, bad kubeconfig) becomes one line and its exit
    code; a reader closing the pipe (`| head`) ends the task quietly; on a terminal, retry waits show."""
    def wrap(body):
        @functools.wraps(body)
        def guarded(*call_args, **call_kwargs):
            from infra.ops.errors import explain

            try:
                with _waits_shown():
                    return body(*call_args, **call_kwargs)
            except Exit:
                raise
            except BrokenPipeError:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
                raise Exit(code=0) from None
            except KeyboardInterrupt:
                raise Exit("interrupted", code=130) from None
            except Exception as error:
                mapped = explain(error)
                if mapped is None:
                    raise
                raise Exit(f"error: {mapped}", code=mapped.exit_code) from None
        return invoke_task(guarded, **kwargs)
    return wrap(args[0]) if args and callable(args[0]) else wrap


def _help_fills_positionals():
    """A Task class whose positionals, when one is handed `-h`/`--help`, fill the others with "".

    invoke gives `TASK --help` to the first empty positional; with two (`secrets.set SERVICE KEY`) its parser then
    stops at the still-missing second one before the body runs, so help_if_asked never could answer. Built on
    demand: invoke's parser classes are imported only here."""
    from invoke import Task
    from invoke.parser import Argument

    class HelpArgument(Argument):
        others: tuple[Argument, ...] = ()

        def set_value(self, value, cast=True):
            super().set_value(value, cast)
            if value in ("-h", "--help"):
                for other in self.others:
                    if other.value is None:
                        other.set_value("", cast=False)

    class HelpFirstTask(Task):
        def get_arguments(self, ignore_unknown_help=None):
            args = super().get_arguments(ignore_unknown_help)
            positionals = [a for a in args if a.positional]
            helpers = [HelpArgument(names=a.names, kind=a.kind, default=a.default, help=a.help, positional=True,
                                    optional=a.optional, incrementable=a.incrementable, attr_name=a.attr_name)
                       for a in positionals]
            for helper in helpers:
                helper.others = tuple(h for h in helpers if h is not helper)
            swap = dict(zip(map(id, positionals), helpers, strict=True))
            return [swap.get(id(a), a) for a in args]

    return HelpFirstTask


def whole(value: object, flag: str, *, default: int | None, minimum: int, what: str, example: int) -> int | None:
    """A whole-number option, taken as text: with an int default invoke would parse it before the task runs and end
    `--timeout abc` in a traceback. None (not given) is `default`; anything else below `minimum` is exit 2."""
    if value is None:
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise fail(f"{flag} takes {what} >= {minimum}, got {str(value)!r}; e.g. {flag} {example}")
    return number


def help_if_asked(value: object, task_name: str) -> None:
    """invoke hands `TASK --help` to a positional argument; show that task's help (exit 0) instead of an error."""
    if value in ("-h", "--help"):
        import subprocess

        subprocess.run([sys.executable, "-m", "invoke", "--help", task_name], check=False)
        raise Exit(code=0)


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
        if diff == env:
            raise fail(f"--diff {diff} compares {env} with itself; name the other stack, e.g. --diff "
                       f"{'prod' if env != 'prod' else 'dev'}")
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
    """Config valid, no generation changes AMI in place, the auth mode does not go back and the Kubernetes version
    moves at most one minor forward, against what the stack last deployed."""
    from infra.config import check_auth_mode_history, check_version_history
    from infra.ops.pulumi_cli import PulumiCLI, PulumiError

    cfg = stack_config(env)
    cli = PulumiCLI(stack=env)
    try:
        outputs = cli.outputs()
    except PulumiError as error:
        raise fail(str(error)) from None
    _refuse_generation_changes(cfg, outputs.get("nodeGroupAmiTypes") or {})
    issues = [*check_auth_mode_history(cfg, outputs.get("authenticationMode")),
              *check_version_history(cfg, outputs.get("clusterVersion"))]
    if issues:
        raise fail("\n".join(str(issue) for issue in issues))
    return cli


@task(positional=[], help={"env": "stack to preview: dev or prod"})
def preview(c, env):
    """`pulumi preview --diff` for a stack, after validating its config (needs the Pulumi CLI and AWS credentials)."""
    from infra.ops.pulumi_cli import PulumiError

    try:
        _checked_cli(env).preview()
    except PulumiError as error:
        raise fail(str(error), code=1) from None


@task(positional=[], help={"env": "stack to update: dev or prod",
                           "yes": "apply without showing the preview and asking (CI; required without a terminal)"})
def up(c, env, yes=False):
    """`pulumi up` for a stack, after validating its config (needs the Pulumi CLI and AWS credentials).

    On a terminal it shows the preview and asks before applying; without one it needs --yes (exit 2 otherwise).
    """
    from infra.ops.pulumi_cli import ConfirmationNeeded, PulumiError

    if not yes and not sys.stdin.isatty():
        require_env(env)
        raise ConfirmationNeeded(env)
    try:
        _checked_cli(env).up(yes=yes, confirm=lambda: _confirm(f"Apply this preview to stack {env}?"))
    except PulumiError as error:
        raise fail(str(error), code=1) from None


def _confirm(question: str) -> bool:
    """Ask a person at the terminal; anything but yes (or end of input) is no."""
    from rich.prompt import Confirm

    try:
        return Confirm.ask(question, default=False)
    except EOFError:
        return False


def _csv(value: str) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@task(help={"only": "comma-separated checks to run: yamllint,render,schema,deprecations,rules,checkov,workflows",
            "skip": "comma-separated checks to leave out, e.g. --skip checkov for a quick pass"})
def lint(c, only="", skip=""):
    """Lint the kustomize tree (infra/k8s): yamllint, render every overlay, schema-validate against each stack's
    Kubernetes version, scan for removed/deprecated APIs, checkov (own venv, created on first run) and the
    workload rules; and the .github/ workflows (`invoke ci.check`). One table of findings; exit 1 on any error."""
    from rich.console import Console

    from infra.ops import ci_check
    from infra.ops import lint as engine
    from infra.ops.findings import table

    selected = engine.select(_csv(only), _csv(skip), known=(*engine.CHECKS, ci_check.NAME))  # exit 2 when bad
    checks = tuple(name for name in selected if name != ci_check.NAME)
    workflows = ci_check.start() if ci_check.NAME in selected else None
    console = Console()
    with console.status("lint") as status:
        report = engine.run(checks=checks, say=lambda step: status.update(f"lint: {step}"))
        if workflows is not None:
            status.update(f"lint: {ci_check.NAME}")
            report.findings += workflows.result()
            report.checks += (ci_check.NAME,)
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

    help_if_asked(name, "new-service")
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


def _deploy_target(service, env, task_name):
    """The service + env as deploy knows them, or exit 2 listing the valid ones."""
    from infra.ops.catalog import BadInput, resolve

    help_if_asked(service, task_name)
    if service.startswith("-"):  # invoke hands `deploy --help` to the positional; point at the real help
        raise fail("SERVICE comes first, e.g. `invoke deploy api --env dev`; options: `invoke --help deploy`")
    require_env(env)
    try:
        return resolve(service, env)
    except BadInput as error:
        raise fail(str(error)) from None


def _kube(env, kubeconfig):
    """API client from --kubeconfig/KUBECONFIG, else from the stack's EKS cluster, proven to be the stack's cluster
    before any task uses it (exit 2 naming both clusters otherwise); exit 1 when unreachable."""
    from rich.console import Console

    from infra.ops import identity
    from infra.ops.kube import KubeError, connect

    cfg = stack_config(env)
    try:
        kube = connect(kubeconfig, cfg.cluster.name, cfg.region)
    except KubeError as error:
        raise fail(str(error), code=1) from None
    with Console(stderr=True).status(f"checking that the cluster is {env}'s ({identity.OBJECT})"):
        identity.prove(kube, cfg, kubeconfig)
    return kube, cfg


def _run_deploy_engine(call):
    """Map engine outcomes to exit codes: bad input 2, failed 1, interrupted 130."""
    from infra.ops.deploy import BadInput, DeployFailed, Interrupted
    from infra.ops.docker_cli import DockerError
    from infra.ops.ecr import EcrError, MissingImage
    from infra.ops.kube import KubeError
    from infra.ops.lock import LockHeld

    try:
        return call()
    except (BadInput, MissingImage) as error:
        raise fail(str(error)) from None
    except Interrupted as error:
        raise Exit(f"interrupted: {error}", code=130) from None
    except KeyboardInterrupt:  # before the deploy took its lock: nothing was applied
        raise Exit("interrupted before anything was applied", code=130) from None
    except (DeployFailed, LockHeld, KubeError, EcrError, DockerError) as error:
        raise fail(str(error), code=1) from None


_KUBE_HELP = "kubeconfig file (default: $KUBECONFIG, else a token for the stack's EKS cluster)"


@task(positional=["service"], help={
    "service": "service to deploy (a directory of infra/k8s/base), e.g. api",
    "env": "environment: dev or prod", "tag": "deploy this image tag, already in ECR (skips the build)",
    "allow_dirty": "build from a working tree with uncommitted changes",
    "dry_run": "server-side dry-run: print the diff of what would change, change nothing",
    "no_rollback": "on failure leave the new version in place for debugging",
    "timeout": "whole seconds the rollout may take in total (default 600)",
    "readiness_grace": "whole seconds a running pod may stay unready (default: from its probe settings)",
    "force_conflicts": "take over fields another field manager owns (server-side apply --force-conflicts)",
    "json_logs": "one JSON object per line instead of progress output", "kubeconfig": _KUBE_HELP})
def deploy(c, service, env=None, tag=None, allow_dirty=False, dry_run=False, no_rollback=False, timeout=None,
           readiness_grace=None, force_conflicts=False, json_logs=False, kubeconfig=None):
    """Ship one service: build+push the git SHA (or --tag), apply the env overlay, track the rollout, smoke check;
    roll back automatically on any failure. Exit 0 deployed, 1 failed (rolled back), 2 bad input, 130 interrupted."""
    from infra.ops.catalog import check_tag
    from infra.ops.deploy import Deploy
    from infra.ops.report import Reporter

    target = _deploy_target(service, env, "deploy")
    check_tag(tag)  # an empty or malformed --tag is exit 2 before anything connects
    timeout = whole(timeout, "--timeout", default=600, minimum=1, what="whole seconds", example=300)
    grace = whole(readiness_grace, "--readiness-grace", default=None, minimum=0, what="whole seconds", example=120)
    kube, cfg = _kube(env, kubeconfig)
    reporter = Reporter.for_terminal(json_logs)
    engine = Deploy(kube, target, region=cfg.region, tag=tag, allow_dirty=allow_dirty, dry_run=dry_run,
                    rollback=not no_rollback, force_conflicts=force_conflicts, timeout_s=timeout,
                    readiness_grace_s=grace, reporter=reporter)
    result = _run_deploy_engine(engine.run)
    if dry_run:
        print("\n".join(result) if result else f"no changes: {service} in {env} is already what the overlay renders")
        print("dry run: nothing applied")
        return
    reporter.event("done", f"{service} {result.tag} is live in {env}", ok=True, tag=result.tag)


@task(positional=["service"], help={
    "service": "service to roll back, e.g. api", "env": "environment: dev or prod",
    "to_revision": "Deployment revision to go back to (default: the one before the current; see `invoke history`)",
    "timeout": "whole seconds the rollback rollout may take (default 600)",
    "json_logs": "one JSON object per line instead of progress output", "kubeconfig": _KUBE_HELP})
def rollback(c, service, env=None, to_revision=None, timeout=None, json_logs=False, kubeconfig=None):
    """Roll a service back by hand to an earlier Deployment revision and track that rollout like a deploy."""
    from infra.ops.deploy import rollback as engine
    from infra.ops.report import Reporter

    target = _deploy_target(service, env, "rollback")
    revision = whole(to_revision, "--to-revision", default=None, minimum=1,
                     what="a revision number (see `invoke history`)", example=3)
    timeout = whole(timeout, "--timeout", default=600, minimum=1, what="whole seconds", example=300)
    kube, _ = _kube(env, kubeconfig)
    reporter = Reporter.for_terminal(json_logs)
    record = _run_deploy_engine(lambda: engine(kube, target, revision, float(timeout), reporter))
    reporter.event("done", f"{service} rolled back to revision {record.revision} ({record.image}) in {env}", ok=True)


@task(positional=["service"], help={"service": "service, e.g. api", "env": "environment: dev or prod",
                                    "json": "print the records as JSON", "kubeconfig": _KUBE_HELP})
def history(c, service, env=None, json_=False, kubeconfig=None):
    """Recent deploys and rollbacks of a service (who, tag, when, verdict), newest last."""
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from infra.ops import history as records

    target = _deploy_target(service, env, "history")
    kube, _ = _kube(env, kubeconfig)
    found = _run_deploy_engine(lambda: records.read(kube, target.namespace, service))
    if json_:
        print(json.dumps([asdict(r) for r in found], indent=2))
        return
    if not found:
        print(f"no deploys of {service} in {env} recorded yet")
        return
    table = Table(title=f"{service} in {env}")
    for column in ("started", "action", "tag", "who", "verdict", "rolled back", "finished"):
        table.add_column(column)
    for r in found:
        table.add_row(r.started, r.action + (f" r{r.revision}" if r.revision else ""), r.tag, r.who,
                      "ok" if r.ok else r.verdict, r.rollback_verdict if r.rolled_back else "", r.finished)
    Console(width=160).print(table)


def _lifecycle(call, resume_hint: str = "", checkpoint=None):
    """Node-lifecycle outcomes as exit codes: bad input 2, blocked/failed 1, interrupted 130. The resume hint is
    given only when `checkpoint` holds progress (a run saved it, or one was found): else there is nothing to resume."""
    from infra.config import ConfigError
    from infra.ops import nodes as migration
    from infra.ops import upgrade
    from infra.ops.drain import DrainBlocked
    from infra.ops.eks import EksError
    from infra.ops.health import NotHealthy
    from infra.ops.kube import KubeError
    from infra.ops.pulumi_cli import PulumiError

    def next_step() -> str:
        if checkpoint is not None and checkpoint.exists and resume_hint:
            return f"progress is checkpointed: fix the cause, then {resume_hint}"
        return "nothing was checkpointed: fix the cause, then rerun"

    try:
        return call()
    except (migration.MigrationRefused, upgrade.UpgradeRefused) as error:
        raise fail(str(error)) from None
    except ConfigError as error:
        raise fail(error.render()) from None
    except (migration.PreflightFailed, upgrade.PreflightFailed) as error:
        raise fail(f"preflight failed, nothing changed: {error}", code=1) from None
    except (DrainBlocked, NotHealthy, PulumiError, EksError, KubeError) as error:
        raise fail(f"{error}; {next_step()}", code=1) from None
    except KeyboardInterrupt:
        raise Exit(f"interrupted; {next_step()}", code=130) from None


def _printer():
    from rich.console import Console

    console = Console()
    return console, lambda event, message: console.print(f"[bold cyan]{event:>11}[/] {message}")


@task(name="migrate", positional=[], help={
    "env": "stack: dev or prod", "pool": "node pool to migrate, e.g. general",
    "to": "generation to move to, e.g. green", "from": "generation to leave (default: the pool's other one)",
    "add": "declare --to in Pulumi.<env>.yaml first (comments kept); AMI: the AL2023 twin of the old one",
    "ami-type": "AMI type for --add, e.g. AL2023_ARM_64_STANDARD", "dry-run": "print the plan, change nothing",
    "resume": "continue an interrupted migration from its checkpoint",
    "rollback": "uncordon the old generation and cordon the new one",
    "parallelism": "pods evicted at once, a whole number >= 1 (default 8; budgets still apply)",
    "kubeconfig": _KUBE_HELP})
def nodes_migrate(c, env=None, pool=None, to=None, from_=None, add=False, ami_type=None, dry_run=False, resume=False,
                  rollback=False, parallelism=None, kubeconfig=None):
    """Blue/green node migration (e.g. AL2 -> AL2023): new generation up, drain AZ by AZ, old one retired.

    Preconditions (declaration, capacity per AZ, budgets that never allow eviction) are checked first.
    Changes go through Pulumi.<env>.yaml + `pulumi up`; progress is kept in a ConfigMap for --resume.
    """
    from infra.ops.drain import DrainPolicy
    from infra.ops.nodes import Migration
    from infra.ops.pulumi_cli import PulumiCLI
    from infra.ops.stack_file import StackFile

    if not pool or not (to or rollback):
        raise fail("--pool and --to are required, e.g. `invoke nodes.migrate --env dev --pool general --to green`")
    if rollback and (resume or dry_run):
        raise fail("--rollback cannot be combined with --resume or --dry-run")
    if resume and dry_run:
        raise fail("--dry-run plans the migration from its start and cannot resume; drop --resume (or --dry-run)")
    if ami_type and not add:
        raise fail(f"--ami-type {ami_type} only applies with --add (declaring --to); an existing generation keeps "
                   f"its ami_type from Pulumi.{env}.yaml")
    parallelism = whole(parallelism, "--parallelism", default=8, minimum=1, what="a whole number of pods", example=8)
    pools = stack_config(env).node_pools
    if pool not in pools:
        raise fail(f"--pool {pool!r} is not a node pool of {env}; use one of: {', '.join(pools)}")
    kube, cfg = _kube(env, kubeconfig)
    console, on_event = _printer()
    engine = Migration(StackFile(env), kube.api, PulumiCLI(stack=env), pool=pool, target=to or "", source=from_, add=add,
                       ami_type=ami_type, policy=DrainPolicy(parallelism=parallelism), on_event=on_event)
    resume_hint = f"`invoke nodes.migrate --env {env} --pool {pool} --to {to} --resume` (or --rollback)"
    if rollback:
        console.print(_lifecycle(engine.rollback, resume_hint, engine.checkpoint))
        return
    plan = _lifecycle(engine.plan, resume_hint, engine.checkpoint)
    console.print(plan.zone_table())
    from infra.ops.preflight import table

    console.print(table(plan.checks, "preflight"))
    if dry_run:
        console.print("\n".join(f"{n}. {step}" for n, step in enumerate(plan.steps(), 1)))
        if plan.blocked:
            raise fail(f"dry run, nothing changed: {len(plan.blocked)} preflight check(s) FAIL "
                       f"({', '.join(check.check for check in plan.blocked)}); the migration would stop before "
                       f"step 1", code=1)
        console.print("dry run: nothing changed")
        return
    _lifecycle(lambda: engine.run(plan, resume=resume), resume_hint, engine.checkpoint)


@task(name="upgrade", positional=[], help={
    "env": "stack: dev or prod", "to": "target Kubernetes version, e.g. 1.32 (one-minor steps are planned)",
    "plan-only": "print the playbook as Markdown (steps, preflight, actions) and stop",
    "dry-run": "print the steps and the preflight table, change nothing",
    "resume": "continue an interrupted upgrade from its checkpoint", "kubeconfig": _KUBE_HELP})
def cluster_upgrade(c, env=None, to=None, plan_only=False, dry_run=False, resume=False, kubeconfig=None):
    """Sequential Kubernetes upgrade: control plane, node groups, add-ons, verify - one minor at a time.

    Every step is preflighted (removed APIs, add-on builds, kubelet skew, AL2, EKS insights, subnet IPs)
    and printed as one table; any FAIL stops before a change. Progress is checkpointed for --resume.
    """
    from infra.ops.eks import Eks
    from infra.ops.preflight import table
    from infra.ops.pulumi_cli import PulumiCLI
    from infra.ops.stack_file import StackFile
    from infra.ops.upgrade import Upgrade, upgrade_target

    if not to:
        raise fail("--to is required, e.g. `invoke cluster.upgrade --env dev --to 1.32`")
    if resume and (dry_run or plan_only):
        raise fail("--resume carries out the rest of an upgrade; --dry-run and --plan-only only show it: drop one")
    _lifecycle(lambda: upgrade_target(to))
    kube, cfg = _kube(env, kubeconfig)
    console, on_event = _printer()
    engine = Upgrade(cfg, StackFile(env), Eks(cfg.region), kube.api, PulumiCLI(stack=env), on_event=on_event)
    resume_hint = f"`invoke cluster.upgrade --env {env} --to {to} --resume`"
    plan = _lifecycle(lambda: engine.plan(to), resume_hint, engine.checkpoint)
    if plan_only:
        print(plan.playbook())
        return
    console.print(f"{plan.cluster}: {' -> '.join([str(plan.current), *(str(s.target) for s in plan.steps)])}")
    for step in plan.steps:
        console.print(table(step.checks, f"preflight {step.source} -> {step.target}"))
    if not plan.steps:
        console.print(f"{plan.cluster} already runs {plan.current}; nothing to do")
        return
    if dry_run:
        if plan.blocked:
            failing = ", ".join(f"{step.target}: {check.check}" for step, check in plan.blocked)
            raise fail(f"dry run, nothing changed: {len(plan.blocked)} preflight check(s) FAIL ({failing}); the "
                       f"upgrade would stop before any change", code=1)
        console.print("dry run: nothing changed")
        return
    _lifecycle(lambda: engine.execute(plan, resume=resume), resume_hint, engine.checkpoint)


@task(name="check", help={"json": "print the findings as JSON instead of a table"})
def ci_check(c, json_=False):
    """Check the .github/ workflows and composite actions: actionlint, zizmor (offline), GitHub's JSON schemas and
    the project's rules (SHA pins with version comments, job timeouts and permissions, queued deploys, a CD matrix
    covering every service). One table of findings; exit 1 on any. Also part of `invoke lint`."""
    from dataclasses import asdict

    from rich.console import Console

    from infra.ops import ci_check as engine
    from infra.ops.findings import table

    findings = engine.check()
    if json_:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    elif findings:
        Console().print(table(findings, "workflow findings"))
    if any(f.failed for f in findings):
        raise Exit(engine.summary(findings), code=1)
    if not json_:
        print(engine.summary(findings))


def _secrets_call(call):
    """Secrets outcomes as exit codes: bad input 2 (nothing changed), AWS failure 1."""
    from infra.ops.secrets import SecretInputError, SecretsError

    try:
        return call()
    except SecretInputError as error:
        raise fail(str(error)) from None
    except SecretsError as error:
        raise fail(str(error), code=1) from None


@task(name="set", klass=_help_fills_positionals(), positional=["service", "key"], help={
    "env": "stack: dev or prod", "service": "service owning the secret, e.g. worker",
    "key": "secret key under the service, e.g. queue-token"})
def secrets_set(c, service, key=None, env=None):
    """Set one secret's value, read from stdin (piped, or typed without echo); never from arguments.

    Example: pass show broker/token | invoke secrets.set --env prod worker queue-token
    """
    from infra.ops import identity, secrets

    help_if_asked(service, "secrets.set")
    help_if_asked(key, "secrets.set")
    if service.startswith("-") or not key:
        raise fail("usage: invoke secrets.set --env ENV SERVICE KEY (value on stdin); options: "
                   "`invoke --help secrets.set`")
    cfg = stack_config(env)
    identity.prove_secrets(cfg)
    version = _secrets_call(lambda: secrets.set_value(cfg, service, key, _secrets_call(secrets.read_value)))
    print(f"set {service}/{key} in {env} (version {version}); pods get it at the next ExternalSecret refresh "
          f"({cfg.secrets.refresh_interval})")


@task(name="list", positional=[], help={"env": "stack: dev or prod", "json": "print JSON instead of a table"})
def secrets_list(c, env=None, json_=False):
    """List a stack's secrets: name, kind, rotation, last rotation, which service reads it. Never values."""
    from infra.ops import identity, secrets

    cfg = stack_config(env)
    identity.prove_secrets(cfg)
    rows = _secrets_call(lambda: secrets.list_rows(cfg))
    if json_:
        print(json.dumps([{**row.__dict__, "last_rotated": str(row.last_rotated or ""),
                           "last_changed": str(row.last_changed or "")} for row in rows], indent=2))
        return
    from rich.console import Console

    Console(width=180).print(secrets.table(rows, env))


@task(name="migrate", positional=[], help={
    "env": "stack: dev or prod", "to": "mode to reach: API (default) or API_AND_CONFIG_MAP",
    "dry_run": "print the steps, change nothing", "kubeconfig": _KUBE_HELP})
def access_migrate(c, env=None, to="API", dry_run=False, kubeconfig=None):
    """Move the cluster from aws-auth to access entries: API_AND_CONFIG_MAP, verify every mapping, then API.

    Each step edits Pulumi.<env>.yaml and runs `pulumi up`; going backwards is refused (EKS cannot).
    Re-running after a failure continues where it stopped.
    """
    from infra.config import ConfigError
    from infra.ops.access import AWS_AUTH, AccessMigration, MigrationFailed, MigrationRefused, eks_client
    from infra.ops.kube import KubeError
    from infra.ops.pulumi_cli import PulumiCLI
    from infra.ops.stack_file import StackFile

    cfg = stack_config(env)
    migration = AccessMigration(env=env, cli=PulumiCLI(stack=env), stack=StackFile(env), eks=eks_client(cfg.region))
    try:
        migration.steps(to)  # a move refused anyway is refused before the cluster is asked
        kube, _ = _kube(env, kubeconfig)  # proven the stack's before any stack-file edit or pulumi up
        migration.read_aws_auth = lambda: kube.get(AWS_AUTH)
        migration.run(target=to, dry_run=dry_run)
    except MigrationRefused as error:
        raise fail(str(error)) from None
    except ConfigError as error:
        raise fail(error.render()) from None
    except (MigrationFailed, KubeError) as error:
        raise fail(str(error), code=1) from None


@task(name="status", positional=[], help={
    "env": "stack: dev or prod", "kubeconfig": _KUBE_HELP, "json": "print the status as JSON instead of the screen",
    "strict": "exit 1 when the platform needs attention (for scripts and CI)"})
def platform_status(c, env=None, kubeconfig=None, json_=False, strict=False):
    """One screen of platform health: node groups per AZ (ready/desired), autoscaler activity, pending pods, alerts.

    Desired sizes come from EKS, the rest from the cluster; firing alerts come from Alertmanager through the
    API server's service proxy (no port-forward). A source that cannot be read is listed under problems.
    """
    from rich.console import Console

    from infra.ops.status import collect, eks_scaling
    from infra.ops.status_view import screen

    kube, cfg = _kube(env, kubeconfig)
    status = collect(kube, cfg, eks_scaling(cfg.region, cfg.cluster.name))
    if json_:
        print(json.dumps(status.to_json(), indent=2))
    else:
        # Piped or in CI there is no terminal width; keep the tables whole rather than 80 columns wide.
        Console(width=None if sys.stdout.isatty() else 160).print(screen(status))
    if strict and not status.healthy:
        raise Exit("platform needs attention", code=1)


def _nat_engine(env: str, call, checkpoint=None):
    """NAT engine outcomes as exit codes: refused/failed 1, bad input 2 (earlier); a failed `pulumi` points at the
    resume only when `checkpoint` holds progress. AWS failures (no credentials, endpoint down) are the task
    decorator's one line (infra.ops.errors)."""
    from infra.ops.nat import NatError
    from infra.ops.pulumi_cli import PulumiError

    try:
        return call()
    except NatError as error:
        raise fail(str(error), code=1) from None
    except PulumiError as error:
        resume = checkpoint is not None and checkpoint.exists
        raise fail(f"{error}" + (f"; progress is kept, rerun `invoke nat.rotate --env {env}` to resume" if resume
                                 else ""), code=1) from None


@task(name="status", positional=[], help={"env": "environment: dev or prod", "json": "print JSON instead of tables"})
def nat_status(c, env=None, json_=False):
    """Which NAT instance each private route table points at, and each instance's state and health."""
    from dataclasses import asdict

    from rich.console import Console

    from infra.ops import nat

    cfg = stack_config(env)
    status = _nat_engine(cfg.env, lambda: nat.read_status(nat.ec2_client(cfg.region), nat.topology_for(cfg.env),
                                                          nat.policy_of(cfg)))
    if json_:
        print(json.dumps(asdict(status), indent=2))
        return
    for table in nat.status_tables(status, cfg.env):
        Console(width=160).print(table)


@task(name="rotate", positional=[], help={
    "env": "environment: dev or prod", "dry_run": "print the steps (routes to move, pulumi commands) and change nothing",
    "timeout": "whole seconds to wait for each new instance to run and pass status checks (default 900)",
    "abort": "give up an interrupted rotation: lift drain marks, delete the checkpoint, leave routes as they are",
    "take_over": "take the rotation lock from a holder you know is gone (a killed process, a lost laptop)"})
def nat_rotate(c, env=None, dry_run=False, timeout=None, abort=False, take_over=False):
    """Replace both NAT instances one at a time with no egress gap; rerun (from any machine) to resume.

    Per instance: park its routes on the other one, `pulumi up --target/--replace` it, wait for the new
    instance to pass status checks, move its route tables back one at a time. One rotation per stack at a
    time: the lock and the checkpoint are SSM parameters under /eks-platform/<env>/nat-rotation/.
    """
    from infra.ops import nat
    from infra.ops.pulumi_cli import PulumiCLI

    cfg = stack_config(env)
    timeout = whole(timeout, "--timeout", default=900, minimum=1, what="whole seconds", example=900)

    def engine() -> nat.Rotation:
        cli = PulumiCLI(stack=cfg.env)
        return nat.Rotation(nat.topology_for(cfg.env, cli), nat.ec2_client(cfg.region), cli,
                            nat.RotationCheckpoint(nat.ssm_client(cfg.region), cfg.env), timeout=float(timeout),
                            policy=nat.policy_of(cfg), take_over=take_over)

    if abort and dry_run:
        raise fail("--abort and --dry-run exclude each other; drop one")
    rotation = _nat_engine(cfg.env, engine)
    if abort:
        _nat_engine(cfg.env, rotation.abort, rotation.checkpoint)
        return
    if dry_run:
        for line in _nat_engine(cfg.env, rotation.plan):
            print(line)
        print("dry run: nothing changed")
        return
    _nat_engine(cfg.env, rotation.run, rotation.checkpoint)


nodes = Collection("nodes")
nodes.add_task(nodes_migrate)
cluster = Collection("cluster")
cluster.add_task(cluster_upgrade)

# Explicit namespace: top-level tasks plus dotted collections (`invoke nodes.migrate`). Add new tasks here.
ns = Collection(plan, preview, up, lint, new_service, deploy, rollback, history)
ns.add_collection(nodes)
ns.add_collection(cluster)
ns.add_collection(Collection("ci", ci_check))
ns.add_collection(Collection("secrets", secrets_set, secrets_list))
ns.add_collection(Collection("access", access_migrate))
ns.add_collection(Collection("platform", platform_status))
ns.add_collection(Collection("nat", nat_status, nat_rotate))

if __name__ == "__main__":  # pragma: no cover - `python tasks.py` is not how tasks run
    sys.exit("run tasks with `invoke`, e.g. `invoke --list`")
