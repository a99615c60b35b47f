"""ECR: one repository per service of infra/k8s/base, where `invoke deploy` pushes and the cluster pulls.

Tags are immutable (a git-SHA tag always means the same bytes, which the deploys and the checkov skips in
infra/k8s/.checkov.yaml rely on), images are scanned on push and encrypted with the stack's own KMS key,
and a lifecycle policy keeps the repository bounded. Names carry the stack (`infra.identity.repository_name`)
so dev and prod can share an account.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.identity import repository_name

UNTAGGED_DAYS = 7
KEEP_IMAGES = 100  # deploy history rolls back to recent tags; this is far more than it ever reaches for


def lifecycle_policy(untagged_days: int = UNTAGGED_DAYS, keep: int = KEEP_IMAGES) -> str:
    """Untagged layers go after a week; beyond the newest `keep` images, the oldest go."""
    return json.dumps({"rules": [
        {"rulePriority": 1, "description": f"expire untagged images after {untagged_days} days",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                       "countNumber": untagged_days}, "action": {"type": "expire"}},
        {"rulePriority": 2, "description": f"keep the newest {keep} images",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
         "action": {"type": "expire"}},
    ]})


@dataclass(frozen=True)
class RegistryArgs:
    env: str
    services: list[str]
    tags: dict[str, str]


class Registry(pulumi.ComponentResource):
    """`urls[service]` is the repository URL a deploy pushes `<url>:<git sha>` to."""

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("eks-platform:registry:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.key = aws.kms.Key(f"{name}-key", description=f"ECR images of eks-platform {args.env}",
                               enable_key_rotation=True, deletion_window_in_days=30, tags=args.tags, opts=child)
        aws.kms.Alias(f"{name}-key", name=f"alias/eks-platform-{args.env}-images", target_key_id=self.key.key_id,
                      opts=child)
        self.repositories: dict[str, aws.ecr.Repository] = {}
        for service in args.services:
            repository = aws.ecr.Repository(
                f"{name}-{service}", name=repository_name(args.env, service), image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
                encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(
                    encryption_type="KMS", kms_key=self.key.arn)],
                tags={**args.tags, "service": service}, opts=child)
            aws.ecr.LifecyclePolicy(f"{name}-{service}", repository=repository.name, policy=lifecycle_policy(),
                                    opts=pulumi.ResourceOptions(parent=self, depends_on=[repository]))
            self.repositories[service] = repository
        self.urls = {service: repository.repository_url for service, repository in self.repositories.items()}
        self.register_outputs({"urls": self.urls})
