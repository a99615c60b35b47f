"""What a person (or CI) asks of the deploy engines, as data: the CLI parses and checks its arguments into one of
these and the engine consumes it, as eksctl's `ctl` -> `actions` split does. Tests build them without invoke.

A request holds what was asked, never a client or a connection: pipeline.Deploy / pipeline.rollback /
history.recorded take the cluster client beside it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from infra.ops.deploy.lock import identity
from infra.ops.deploy.target import Target


@dataclass(frozen=True)
class DeployRequest:
    """`invoke deploy`: ship one service to one env, build or --tag, tracked and rolled back on failure."""

    target: Target
    region: str
    tag: str | None = None              # deploy this existing tag; None: build the git SHA
    allow_dirty: bool = False
    dry_run: bool = False
    rollback: bool = True
    force_conflicts: bool = False
    timeout_s: float = 600.0
    readiness_grace_s: float | None = None  # None: from the pod template's probes
    smoke_budget_s: float = 30.0
    public_host: str | None = None      # the service's eks-platform:edge hostname: also check through the edge
    public_budget_s: float = 60.0
    context: Path | None = None         # docker build context (default services/<service>, as cd.yml filters)
    who: str = field(default_factory=identity)


@dataclass(frozen=True)
class RollbackRequest:
    """`invoke rollback`: put a service back on an earlier Deployment revision (None: the one before the current)."""

    target: Target
    to_revision: int | None = None
    timeout_s: float = 600.0
    who: str = field(default_factory=identity)


@dataclass(frozen=True)
class HistoryRequest:
    """`invoke history`: the recorded deploys and rollbacks of one service in one env."""

    target: Target
