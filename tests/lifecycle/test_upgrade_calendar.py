"""cluster.upgrade and the EKS version calendar: the target that reaches standard support is proposed, and every
step's preflight says how long its version is supported (days left, the extended-support cost)."""
from __future__ import annotations

from datetime import date

import pytest

from infra.ops.lifecycle.errors import UpgradeRefused
from infra.ops.lifecycle.preflight import FAIL, PASS, WARN, support_window
from infra.ops.lifecycle.upgrade import Upgrade, UpgradeRequest
from infra.versions import KubeVersion
from tests.support import fake_pulumi
from tests.support.identity import declare_identity
from tests.support.upgrade_world import legacy_stack, upgrade

V = KubeVersion.parse
TODAY = date(2026, 12, 5)


@pytest.mark.parametrize("target, final, status, detail", [
    ("1.31", True, FAIL, "1.31 left EKS extended support on 2026-11-26: EKS upgrades no cluster to it"),
    ("1.33", False, PASS, "1.33: extended support until 2027-07-29, 236 days left (about $365/month more per "
                          "cluster); passed through"),
    ("1.34", True, WARN, "1.34: extended support until 2027-12-02, 362 days left (about $365/month more per cluster)"),
    ("1.35", True, PASS, "1.35: standard support until 2027-03-27, 112 days left"),
    ("1.36", True, PASS, "1.36: standard support until 2027-08-02, 240 days left"),
])
def test_each_step_says_how_long_its_version_is_supported(target, final, status, detail):
    check = support_window(V(target), TODAY, final)
    assert (check.check, check.status, check.detail) == ("support calendar", status, detail)
    if status == WARN:
        assert check.fix == "continue to 1.35 (standard support)"


def _proposing(stack, kube, today: date = TODAY, **flags) -> Upgrade:
    return upgrade(stack, kube, None, today=today, **flags)


def test_plan_only_without_a_target_proposes_the_one_reaching_standard_support(upgrade_cluster, tmp_path):
    sim, kube = upgrade_cluster
    stack = legacy_stack(tmp_path, al2=False)  # 1.32: extended support until 2027-03-23
    fake_pulumi.seed_eks(stack.config())
    plan = _proposing(stack, kube, plan_only=True).plan()
    assert plan.proposed and str(plan.target) == "1.35"
    assert [str(step.target) for step in plan.steps] == ["1.33", "1.34", "1.35"]
    rows = [next(c for c in step.checks if c.check == "support calendar") for step in plan.steps]
    assert [row.status for row in rows] == [PASS, PASS, PASS] and "112 days left" in rows[-1].detail
    playbook = plan.playbook()
    assert "Target 1.35: the nearest version in EKS standard support (pass --to for another)." in playbook
    assert ("- 1.32: extended support until 2027-03-23, 108 days left (about $365/month more per cluster) "
            "(EKS calendar, 2026-12-05)") in playbook
    assert "- 1.35: standard support until 2027-03-27, 112 days left (EKS calendar, 2026-12-05)" in playbook
    assert "| support calendar | pass | 1.35: standard support until 2027-03-27, 112 days left |" in playbook


def test_the_proposal_moves_with_the_day(upgrade_cluster, tmp_path):
    sim, kube = upgrade_cluster
    stack = legacy_stack(tmp_path, al2=False)
    fake_pulumi.seed_eks(stack.config())
    later = _proposing(stack, kube, today=date(2027, 4, 1), dry_run=True).plan()  # 1.35 in extended by then
    assert str(later.target) == "1.36" and len(later.steps) == 4


def test_an_upgrade_needs_a_target_the_proposal_is_only_shown():
    with pytest.raises(UpgradeRefused, match="--to is required to upgrade"):
        UpgradeRequest(env="dev", to=None)


def test_task_plan_only_without_to_on_a_stack_in_standard_support(upgrade_cluster, capsys):
    from invoke import Context

    from infra.cli.cluster import cluster_upgrade
    from infra.config import load_stack_config

    sim, _ = upgrade_cluster
    fake_pulumi.seed_eks(load_stack_config("dev"))  # the real dev: 1.35, in standard support
    declare_identity(sim, "dev")
    cluster_upgrade(Context(), env="dev", plan_only=True, kubeconfig=sim.kubeconfig)
    out = capsys.readouterr().out
    assert out.startswith("# Upgrade eks-dev (dev) from 1.35 to 1.35")
    assert "- 1.35: standard support until 2027-03-27, 112 days left" in out
    assert "Nothing to do: the cluster already runs the target version." in out
