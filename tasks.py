"""invoke tasks: the namespaces of infra/cli composed into one. `invoke --list` shows them all.

Each module of infra/cli parses one namespace's arguments into calls on the engines (infra/ops, infra/lint,
infra/plan) and ends with its own Collection; top-level tasks (plan, deploy, lint, ...) join the root here.
"""
from __future__ import annotations

import sys

from invoke import Collection

from infra.cli import access, ci, cluster, deploy, dev, nat, nodes, parsing, platform, repo, secrets, service, stack

parsing.install()  # invoke's own parse errors (unknown flag, extra argument) keep the contract: one line, exit 2

ns = Collection()
for top_level in (stack.ns, repo.ns, deploy.ns, dev.ns):
    for name, body in top_level.tasks.items():
        ns.add_task(body, name=name)
for namespace in (nodes.ns, cluster.ns, ci.ns, secrets.ns, access.ns, platform.ns, nat.ns, service.ns):
    ns.add_collection(namespace)

if __name__ == "__main__":  # pragma: no cover - `python tasks.py` is not how tasks run
    sys.exit("run tasks with `invoke`, e.g. `invoke --list`")
