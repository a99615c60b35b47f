"""`invoke platform.*`: one screen of platform health."""
from __future__ import annotations

import json
import sys

from invoke import Collection
from invoke.exceptions import Exit

from infra.cli.common import KUBE_HELP, console, kube_for, task


@task(name="status", positional=[], help={
    "env": "stack: dev or prod", "kubeconfig": KUBE_HELP, "json": "print the status as JSON instead of the screen",
    "strict": "exit 1 when the platform needs attention (for scripts and CI)"})
def platform_status(c, env=None, kubeconfig=None, json_=False, strict=False):
    """One screen of platform health: node groups per AZ (ready/desired), autoscaler activity, pending pods, alerts,
    and each public hostname with its load balancer, target health and certificate expiry.

    Desired sizes come from EKS, the rest from the cluster; firing alerts come from Alertmanager through the
    API server's service proxy (no port-forward). A source that cannot be read is listed under problems.
    """

    from infra.ops.platform.edge import public_hosts
    from infra.ops.platform.status import collect, eks_scaling
    from infra.ops.platform.view import screen

    kube, cfg = kube_for(env, kubeconfig)
    status = collect(kube, cfg, eks_scaling(cfg.region, cfg.cluster.name),
                     edge=(lambda: public_hosts(cfg)) if cfg.edge else None)
    if json_:
        print(json.dumps(status.to_json(), indent=2))
    else:
        # Piped or in CI there is no terminal width; keep the tables whole rather than 80 columns wide.
        console(width=None if sys.stdout.isatty() else 160).print(screen(status))
    if strict and not status.healthy:
        raise Exit("platform needs attention", code=1)



ns = Collection("platform", platform_status)
