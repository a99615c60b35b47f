"""`invoke deploy|rollback|history`: one service at a time, tracked, verified and rolled back on failure."""
from __future__ import annotations

import json

from invoke import Collection

from infra.cli.common import KUBE_HELP, console, fail, help_if_asked, kube_for, require_env, task, whole


def _deploy_target(service, env, task_name):
    """The service + env as deploy knows them, or exit 2 listing the valid ones."""
    from infra.ops.deploy.target import resolve

    help_if_asked(service, task_name)
    if service.startswith("-"):  # invoke hands `deploy --help` to the positional; point at the real help
        raise fail("SERVICE comes first, e.g. `invoke deploy api --env dev`; options: `invoke --help deploy`")
    require_env(env)
    return resolve(service, env)


REVISION_MAX = 2**31 - 1  # Kubernetes keeps deployment.kubernetes.io/revision as an int64; no real one comes near

# A Ctrl-C these tasks do not turn into the engine's own Interrupted lands before the deploy took its lock.
BEFORE_APPLY = "interrupted before anything was applied"


@task(positional=["service"], interrupted=BEFORE_APPLY, help={
    "service": "service to deploy (a directory of infra/k8s/base), e.g. api",
    "env": "environment: dev or prod", "tag": "deploy this image tag, already in ECR (skips the build)",
    "allow_dirty": "build from a working tree with uncommitted changes",
    "dry_run": "server-side dry-run: print the diff of what would change, change nothing",
    "no_rollback": "on failure leave the new version in place for debugging",
    "timeout": "whole seconds the rollout may take in total (default 600)",
    "readiness_grace": "whole seconds a running pod may stay unready (default: from its probe settings)",
    "force_conflicts": "take over fields another field manager owns (server-side apply --force-conflicts)",
    "json_logs": "one JSON object per line instead of progress output", "kubeconfig": KUBE_HELP})
def deploy(c, service, env=None, tag=None, allow_dirty=False, dry_run=False, no_rollback=False, timeout=None,
           readiness_grace=None, force_conflicts=False, json_logs=False, kubeconfig=None):
    """Ship one service: build+push the git SHA (or --tag), apply the env overlay, track the rollout, smoke check;
    roll back automatically on any failure. Exit 0 deployed, 1 failed (rolled back), 2 bad input, 130 interrupted."""
    from infra.ops.deploy.pipeline import Deploy
    from infra.ops.deploy.report import Reporter
    from infra.ops.deploy.requests import DeployRequest
    from infra.ops.deploy.target import check_tag

    target = _deploy_target(service, env, "deploy")
    check_tag(tag)  # an empty or malformed --tag is exit 2 before anything connects
    timeout = whole(timeout, "--timeout", default=600, minimum=1, what="whole seconds", example=300)
    grace = whole(readiness_grace, "--readiness-grace", default=None, minimum=0, what="whole seconds", example=120)
    kube, cfg = kube_for(env, kubeconfig)
    request = DeployRequest(target, region=cfg.region, tag=tag, allow_dirty=allow_dirty, dry_run=dry_run,
                            rollback=not no_rollback, force_conflicts=force_conflicts, timeout_s=timeout,
                            readiness_grace_s=grace,
                            public_host=cfg.edge.hostnames.get(service) if cfg.edge else None)
    reporter = Reporter.for_terminal(json_logs)
    result = Deploy(kube, request, reporter=reporter).run()
    if isinstance(result, list):  # --dry-run: the diff lines
        print("\n".join(result) if result else f"no changes: {service} in {env} is already what the overlay renders")
        print("dry run: nothing applied")
        return
    reporter.event("done", f"{service} {result.tag} is live in {env}", ok=True, tag=result.tag)


@task(positional=["service"], interrupted=BEFORE_APPLY, help={
    "service": "service to roll back, e.g. api", "env": "environment: dev or prod",
    "to_revision": "Deployment revision to go back to (default: the one before the current; see `invoke history`)",
    "timeout": "whole seconds the rollback rollout may take (default 600)",
    "json_logs": "one JSON object per line instead of progress output", "kubeconfig": KUBE_HELP})
def rollback(c, service, env=None, to_revision=None, timeout=None, json_logs=False, kubeconfig=None):
    """Roll a service back by hand to an earlier Deployment revision and track that rollout like a deploy."""
    from infra.ops.deploy.pipeline import rollback as engine
    from infra.ops.deploy.report import Reporter
    from infra.ops.deploy.requests import RollbackRequest

    target = _deploy_target(service, env, "rollback")
    revision = whole(to_revision, "--to-revision", default=None, minimum=1,
                     what="a revision number (see `invoke history`)", example=3, maximum=REVISION_MAX)
    timeout = whole(timeout, "--timeout", default=600, minimum=1, what="whole seconds", example=300)
    kube, _ = kube_for(env, kubeconfig)
    reporter = Reporter.for_terminal(json_logs)
    record = engine(kube, RollbackRequest(target, to_revision=revision, timeout_s=float(timeout)), reporter)
    reporter.event("done", f"{service} rolled back to revision {record.revision} ({record.image}) in {env}", ok=True)


@task(positional=["service"], interrupted=BEFORE_APPLY, help={
    "service": "service, e.g. api", "env": "environment: dev or prod", "json": "print the records as JSON",
    "kubeconfig": KUBE_HELP})
def history(c, service, env=None, json_=False, kubeconfig=None):
    """Recent deploys and rollbacks of a service (who, tag, when, verdict), newest last."""
    from dataclasses import asdict

    from rich.table import Table

    from infra.ops.deploy import history as records
    from infra.ops.deploy.requests import HistoryRequest

    target = _deploy_target(service, env, "history")
    kube, _ = kube_for(env, kubeconfig)
    found = records.recorded(kube, HistoryRequest(target))
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
    console(width=160).print(table)



ns = Collection(deploy, rollback, history)
