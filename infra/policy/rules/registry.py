"""ECR repositories: tags that never move (deploys and checkov skips rely on it), scanned, KMS, bounded."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs

from infra.policy.support import ADVISORY, MANDATORY, as_list, get, label, of_type, resource_rule, stack_rule

REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"


def _immutable(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    if props.get("imageTagMutability") != "IMMUTABLE":
        yield (f"image tags are {props.get('imageTagMutability') or 'MUTABLE (the default)'}: a push can move a git-SHA "
               f"tag under a running Deployment, and imagePullPolicy IfNotPresent then runs different bytes per node")


immutable_tags = resource_rule(
    "ecr-immutable-tags",
    "Repositories must have immutable tags: deploys pin git-SHA tags and infra/k8s/.checkov.yaml skips CKV_K8S_15/43 "
    "on that promise. Source: https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html "
    "(checked 2026-12-05).",
    (REPOSITORY,), _immutable, MANDATORY, 'set image_tag_mutability="IMMUTABLE"')


def _scan(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    if get(props, "imageScanningConfiguration.scanOnPush") is not True:
        yield "images are not scanned on push: a known CVE reaches the cluster unseen"


scan_on_push = resource_rule(
    "ecr-scan-on-push",
    "Repositories should scan images on push. Source: https://docs.aws.amazon.com/AmazonECR/latest/userguide/"
    "image-scanning-basic.html (checked 2026-12-05).",
    (REPOSITORY,), _scan, ADVISORY, "set image_scanning_configuration scan_on_push=True")


def _kms(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    configs = as_list(props.get("encryptionConfigurations"))
    if not any(get(c, "encryptionType") == "KMS" and get(c, "kmsKey") for c in configs):
        yield "images are encrypted with the AWS-owned AES256 key, not a customer KMS key the stack controls"


kms_encryption = resource_rule(
    "ecr-kms-encryption",
    "Repositories should encrypt with a customer-managed KMS key (auditable, revocable). Source: "
    "https://docs.aws.amazon.com/AmazonECR/latest/userguide/encryption-at-rest.html (checked 2026-12-05).",
    (REPOSITORY,), _kms, ADVISORY, "set encryption_configurations [{encryption_type: KMS, kms_key: <key arn>}]")


def _lifecycle(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    covered = set()
    for policy in of_type(resources, LIFECYCLE):
        covered.add(str(policy.props.get("repository")))
        covered |= {d.urn for d in policy.dependencies}
    for repository in of_type(resources, REPOSITORY):
        if repository.urn not in covered and str(repository.props.get("name") or repository.name) not in covered:
            yield repository.urn, f"{label(repository)} has no lifecycle policy: every pushed image is kept and billed"


lifecycle_policy = stack_rule(
    "ecr-lifecycle-policy",
    "Every repository should have a lifecycle policy that expires untagged and old images. Source: "
    "https://docs.aws.amazon.com/AmazonECR/latest/userguide/LifecyclePolicies.html (checked 2026-12-05).",
    _lifecycle, ADVISORY, "declare an aws.ecr.LifecyclePolicy for the repository")

POLICIES = [immutable_tags, scan_on_push, kms_encryption, lifecycle_policy]
