"""In-cluster add-ons: a pinned Helm chart, and the IRSA role its service account assumes.

Every release is atomic (a failed upgrade rolls back instead of leaving half a chart) and keeps a
bounded history; the version always comes from the pinned catalogue or a deliberate stack override.
"""
from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.charts import CHARTS, chart_version
from infra.components.cluster import irsa_trust_policy
from infra.components.iam import scoped_role_args

RELEASE_TIMEOUT_SECONDS = 900


def install_chart(resource_name: str, chart: str, overrides: dict[str, str], values: dict[str, Any],
                  opts: pulumi.ResourceOptions, namespace: str | None = None) -> k8s.helm.v3.Release:
    """A Helm release of one catalogue chart at its pinned (or overridden) version."""
    spec = CHARTS[chart]
    return k8s.helm.v3.Release(
        resource_name,
        name=chart,
        chart=spec.name,
        version=chart_version(chart, overrides),
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=spec.repo),
        namespace=namespace or spec.namespace,
        create_namespace=False,
        atomic=True,
        cleanup_on_fail=True,
        max_history=10,
        timeout=RELEASE_TIMEOUT_SECONDS,
        values=values,
        opts=opts,
    )


def service_account_role(resource_name: str, oidc_arn: pulumi.Input[str], oidc_url: pulumi.Input[str],
                         namespace: str, service_account: str, policy: pulumi.Input[str], tags: dict[str, str],
                         parent: pulumi.Resource) -> aws.iam.Role:
    """An IAM role only `namespace/service_account` can assume (IRSA), with one inline policy."""
    role = aws.iam.Role(
        resource_name, **scoped_role_args(),
        assume_role_policy=irsa_trust_policy(oidc_arn, oidc_url, f"system:serviceaccount:{namespace}:{service_account}"),
        tags=tags, opts=pulumi.ResourceOptions(parent=parent))
    aws.iam.RolePolicy(resource_name, role=role.id, policy=policy, opts=pulumi.ResourceOptions(parent=parent))
    return role


def irsa_annotation(role: aws.iam.Role) -> dict[str, pulumi.Output[str]]:
    return {"eks.amazonaws.com/role-arn": role.arn}
