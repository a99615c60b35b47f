"""The eks-platform CrossGuard policy pack: AWS, EKS and pulumi-eks rules the mocks cannot see.

`POLICIES` is a plain list so offline evaluation (infra/plan/verdict.py) can import it; only the pack
directory's `__main__.py` builds the `PolicyPack`, which starts pulumi's analyzer server and never returns.
"""
from __future__ import annotations

from infra.policy.rules import compute, edge, eks, iam, kubernetes, parliament, registry, secrets, storage

PACK_NAME = "eks-platform"
POLICIES = [*eks.POLICIES, *kubernetes.POLICIES, *iam.POLICIES, *parliament.POLICIES, *registry.POLICIES,
            *secrets.POLICIES, *compute.POLICIES, *storage.POLICIES, *edge.POLICIES]
