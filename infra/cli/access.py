"""`invoke access.*`: moving the cluster from aws-auth to access entries."""
from __future__ import annotations

from invoke import Collection

from infra.cli.common import KUBE_HELP, kube_for, stack_config, task


@task(name="migrate", positional=[], help={
    "env": "stack: dev or prod", "to": "mode to reach: API (default) or API_AND_CONFIG_MAP",
    "dry_run": "print the steps, change nothing", "kubeconfig": KUBE_HELP})
def access_migrate(c, env=None, to="API", dry_run=False, kubeconfig=None):
    """Move the cluster from aws-auth to access entries: API_AND_CONFIG_MAP, verify every mapping, then API.

    Each step edits Pulumi.<env>.yaml and runs `pulumi up`; going backwards is refused (EKS cannot).
    Re-running after a failure continues where it stopped.
    """
    from infra.ops.io.pulumi_cli import PulumiCLI
    from infra.ops.io.stack_file import StackFile
    from infra.ops.lifecycle.access import AWS_AUTH, AccessMigration, AccessRequest, eks_client

    cfg = stack_config(env)
    migration = AccessMigration(AccessRequest(env=env, to=to, dry_run=dry_run), cli=PulumiCLI(stack=env),
                                stack=StackFile(env), eks=eks_client(cfg.region))
    migration.steps()  # a move refused anyway is refused before the cluster is asked
    kube, _ = kube_for(env, kubeconfig)  # proven the stack's before any stack-file edit or pulumi up
    migration.read_aws_auth = lambda: kube.get(AWS_AUTH)
    migration.run()



ns = Collection("access", access_migrate)
