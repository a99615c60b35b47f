"""cluster.upgrade's world: a stack file at 1.32 (tests/support/legacy), the add-on builds EKS would offer, and the
Upgrade engine as a test builds it (a request object, no invoke). The cluster itself is the `upgrade_cluster`
fixture (tests/support/fixtures/upgrade.py); moto's EKS follows the stack file through the fake `pulumi`."""
from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

from infra.ops.io.eks import AddonBuild, Eks
from infra.ops.io.pulumi_cli import PulumiCLI
from infra.ops.io.stack_file import StackFile
from infra.ops.lifecycle.upgrade import Timeouts, Upgrade, UpgradeRequest
from infra.versions import KubeVersion
from tests.support.legacy import LEGACY_DEV

AZS = ("eu-west-1a", "eu-west-1b")


def builds(region: str, addon: str, version: KubeVersion) -> list[AddonBuild]:
    """What describe_addon_versions would offer (moto lacks it): one default build per add-on and version."""
    if addon == "kube-proxy":
        return [AddonBuild(f"v{version}.0-eksbuild.1", True)]
    return [AddonBuild(f"v1.{version.minor - 10}.0-eksbuild.1", True)]


def legacy_stack(tmp_path: Path, al2: bool) -> StackFile:
    """dev's stack file at 1.32 in tmp_path; with `al2`, its AL2 generation (blue) stays."""
    shutil.copy(LEGACY_DEV, tmp_path / "Pulumi.dev.yaml")  # 1.32 with an AL2 generation
    stack = StackFile("dev", tmp_path)
    if not al2:
        stack.remove_generation("general", "blue")
    return stack


def upgrade(stack: StackFile, kube, to: str | None, objects=None, resume: bool = False, today: date | None = None,
            **request) -> Upgrade:
    """The engine as a test builds it: a request object (`request` are further UpgradeRequest fields), no invoke;
    `today` is the day the EKS calendar is read on (None: the suite's day)."""
    cfg = stack.config()
    return Upgrade(UpgradeRequest(env="dev", to=to, resume=resume, **request), cfg, stack, Eks(cfg.region), kube,
                   PulumiCLI(stack="dev", cwd=stack.root), addon_builds=builds,
                   objects=objects or (lambda: []), timeouts=Timeouts(healthy=30, converge=30, poll=0.05), today=today)
