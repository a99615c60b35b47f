"""`invoke nodes.*`: blue/green node migrations."""
from __future__ import annotations

from invoke import Collection

from infra.cli.common import KUBE_HELP, fail, kube_for, printer, stack_config, task, whole
from infra.cli.flags import long_only


@task(name="migrate", positional=[], klass=long_only("ami_type"), help={
    "env": "stack: dev or prod", "pool": "node pool to migrate, e.g. general",
    "to": "generation to move to, e.g. green", "from": "generation to leave (default: the pool's other one)",
    "add": "declare --to in Pulumi.<env>.yaml first (comments kept); AMI: the AL2023 twin of the old one",
    "ami-type": "AMI type for --add, e.g. AL2023_ARM_64_STANDARD", "dry-run": "print the plan, change nothing",
    "resume": "continue an interrupted migration from its checkpoint",
    "rollback": "uncordon the old generation and cordon the new one",
    "parallelism": "pods evicted at once, a whole number >= 1 (default 8; budgets still apply)",
    "kubeconfig": KUBE_HELP})
def nodes_migrate(c, env=None, pool=None, to=None, from_=None, add=False, ami_type=None, dry_run=False, resume=False,
                  rollback=False, parallelism=None, kubeconfig=None):
    """Blue/green node migration (e.g. AL2 -> AL2023): new generation up, drain AZ by AZ, old one retired.

    Preconditions (declaration, capacity per AZ, budgets that never allow eviction) are checked first.
    Changes go through Pulumi.<env>.yaml + `pulumi up`; progress is kept in a ConfigMap for --resume.
    """
    from infra.ops.io.pulumi_cli import PulumiCLI
    from infra.ops.io.stack_file import StackFile
    from infra.ops.lifecycle.migrate import Migration, MigrationRequest

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
    request = MigrationRequest(env=env, pool=pool, to=to, source=from_, add=add, ami_type=ami_type,
                               parallelism=parallelism, resume=resume, rollback=rollback, dry_run=dry_run)
    kube, cfg = kube_for(env, kubeconfig)
    console, on_event = printer()
    engine = Migration(request, StackFile(env), kube, PulumiCLI(stack=env), on_event=on_event)
    if request.rollback:
        console.print(engine.rollback())
        return
    plan = engine.plan()
    console.print(plan.zone_table())
    from infra.ops.lifecycle.preflight import table

    console.print(table(plan.checks, "preflight"))
    if request.dry_run:
        console.print("\n".join(f"{n}. {step}" for n, step in enumerate(plan.steps(), 1)))
        if plan.blocked:
            raise fail(f"dry run, nothing changed: {len(plan.blocked)} preflight check(s) FAIL "
                       f"({', '.join(check.check for check in plan.blocked)}); the migration would stop before "
                       f"step 1", code=1)
        console.print("dry run: nothing changed")
        return
    engine.run(plan)



ns = Collection("nodes", nodes_migrate)
