"""Node-lifecycle errors (migrate, upgrade, access), each on the exit-code contract of infra.ops.errors.

Defined once here so `nodes.migrate` and `access.migrate` refuse with the same class, and so the
failures a checkpointed run can be resumed from are listed in one place (`RESUMABLE`).
"""
from __future__ import annotations

from infra.ops.errors import Failed, Refused
from infra.ops.io.eks import EksError
from infra.ops.io.kube import KubeError
from infra.ops.io.pulumi_cli import PulumiError


class MigrationRefused(Refused):
    """Bad arguments or state for a node or access migration; nothing was changed. The message says what to do."""


class UpgradeRefused(Refused):
    """Bad target or state for an upgrade: nothing was changed; the message says why and what to do."""


class PreflightFailed(Failed):
    """At least one preflight check blocks; nothing was changed. The plan's table shows which check and the fix."""

    def __init__(self, blocking: str):
        super().__init__(f"preflight failed, nothing changed: {blocking}")


class DrainBlocked(Failed):
    """Pods could not be evicted or did not come back in time; the message names them and why."""


class NotHealthy(Failed):
    """The cluster did not become healthy in time; the message lists what is still wrong."""


# Failures in the middle of a migration or upgrade that a rerun with --resume continues from: their message
# gains the resume hint. Refusals and a failed preflight changed nothing, so they get none.
RESUMABLE: tuple[type[BaseException], ...] = (DrainBlocked, NotHealthy, PulumiError, EksError, KubeError)
