"""Upgrade planner: one-minor step paths and refusals, table-driven."""
from __future__ import annotations

import pytest

from infra.ops.lifecycle.upgrade import UpgradeRefused, upgrade_path
from infra.versions import KubeVersion

V = KubeVersion.parse


@pytest.mark.parametrize("current, to, steps", [
    ("1.29", "1.32", ["1.29->1.30", "1.30->1.31", "1.31->1.32"]),
    ("1.31", "1.32", ["1.31->1.32"]),
    ("1.32", "1.35", ["1.32->1.33", "1.33->1.34", "1.34->1.35"]),
    ("1.31", "1.31", []),
    ("1.28", "1.29", ["1.28->1.29"]),  # a cluster below the range can still climb into it
    ("1.31", " 1.33 ", ["1.31->1.32", "1.32->1.33"]),
])
def test_paths(current, to, steps):
    assert [f"{a}->{b}" for a, b in upgrade_path(V(current), to)] == steps


@pytest.mark.parametrize("current, to, message", [
    ("1.31", "1.30", "--to 1.30 is older than the control plane (1.31); EKS cannot downgrade"),
    ("1.31", "1.37", "--to 1.37 is outside the supported range 1.29..1.36"),
    ("1.31", "1.3x", "--to: '1.3x' is not a Kubernetes minor version"),
    ("1.31", "2.0", "--to: '2.0' is not a Kubernetes minor version"),
    ("1.31", "1.32.1", "--to: '1.32.1' is not a Kubernetes minor version"),
    ("1.31", "1.28", "--to 1.28 is outside the supported range"),
])
def test_refusals(current, to, message):
    with pytest.raises(UpgradeRefused) as refused:
        upgrade_path(V(current), to)
    assert message in str(refused.value)


def test_task_refuses_a_bad_target_before_touching_aws_or_the_cluster():
    from invoke import Context
    from invoke.exceptions import Exit

    from infra.cli.cluster import cluster_upgrade

    with pytest.raises(Exit) as refused:
        cluster_upgrade(Context(), env="dev", to="1.40", kubeconfig="/nonexistent/kubeconfig")
    assert refused.value.code == 2 and "--to 1.40 is outside the supported range" in str(refused.value.message)
