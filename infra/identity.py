"""What a stack's cluster and secrets say about themselves, so a task can tell its stack's from another's.

Plain data, no pulumi or boto3 import: the Pulumi program declares the identity ConfigMap (platform
component) and the secrets KMS alias (secrets component), `infra.ops.identity` checks both before a task
reads or changes anything, and tests seed them from here.
"""
from __future__ import annotations

from infra.config import PROJECT, StackConfig

NAMESPACE = "kube-system"
NAME = "eks-platform-identity"
LABELS = {"app.kubernetes.io/managed-by": PROJECT}
# Every authenticated identity may `get` this one ConfigMap (and nothing else through this grant): CI's
# deployer is namespaced to the app namespace, and a task that cannot read the identity cannot prove anything.
READER = "eks-platform-identity-reader"
READERS_GROUP = "system:authenticated"


def identity_of(cfg: StackConfig) -> dict[str, str]:
    """The data of the identity ConfigMap in `cfg`'s cluster."""
    return {"project": PROJECT, "stack": cfg.env, "cluster": cfg.cluster.name, "region": cfg.region}


def secrets_key_alias(env: str) -> str:
    """The alias of the KMS key that encrypts the stack's service secrets."""
    return f"alias/{PROJECT}-{env}-service-secrets"


def secrets_key_tags(env: str) -> dict[str, str]:
    """Tags the stack puts on that key (among others): which project and stack it belongs to."""
    return {"project": PROJECT, "environment": env}


# Tags on the eks.Cluster that the policy pack (infra/policy) reads. The waiver lists, space-separated, the rules a
# resource is a deliberate exception to, set only from an explicit stack-config key (docs/policy.md); the creator
# is the principal EKS made cluster admin at CreateCluster (eks-platform:access.cluster_creator_arn).
WAIVER_TAG = f"{PROJECT}:policy-waiver"
CREATOR_TAG = f"{PROJECT}:cluster-creator"

# The shared base image every service builds FROM (services/base): deploy builds and pushes it first, into the
# stack's repository of this name, which the registry component declares beside the services' own.
BASE_REPOSITORY = "service-base"


def repository_name(env: str, service: str) -> str:
    """The ECR repository of one service in one stack: the stack declares it, deploys push to and read from it.

    Prefixed by the stack so dev and prod can share an account without pushing into each other's repositories.
    """
    return f"{PROJECT}/{env}/{service}"
