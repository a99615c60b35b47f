"""`invoke cluster.*`: sequential Kubernetes version upgrades."""
from __future__ import annotations

from invoke import Collection

from infra.cli.common import KUBE_HELP, fail, kube_for, printer, task


@task(name="upgrade", positional=[], help={
    "env": "stack: dev or prod", "to": "target Kubernetes version, e.g. 1.32 (one-minor steps are planned)",
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

    if not to:
        raise fail("--to is required, e.g. `invoke cluster.upgrade --env dev --to 1.32`")
    if resume and (dry_run or plan_only):
        raise fail("--resume carries out the rest of an upgrade; --dry-run and --plan-only only show it: drop one")
    request = UpgradeRequest(env=env, to=to, resume=resume, plan_only=plan_only, dry_run=dry_run)  # checks --to
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



ns = Collection("cluster", cluster_upgrade)
