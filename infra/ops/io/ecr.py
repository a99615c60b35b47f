"""ECR for deploys: where a service's images live, whether a tag exists, and push credentials.

boto3 takes its endpoint from the environment (AWS_ENDPOINT_URL) and retries throttling and 5xx with
botocore's standard mode. The registry password is kept out of reprs and messages.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from infra.ops.errors import Failed, Refused, reason
from infra.ops.io import aws


class EcrError(Failed):
    """An ECR call failed; the message names the repository and, in the words of infra.ops.errors, what to do."""


class MissingImage(Refused):
    """The repository or tag does not exist: bad input, not an outage."""


@dataclass(frozen=True)
class RegistryLogin:
    registry: str
    username: str
    password: str = field(repr=False)


@dataclass
class Registry:
    region: str

    def __post_init__(self) -> None:
        self.ecr = aws.client("ecr", self.region)

    def repository_uri(self, name: str) -> str:
        """The repository's URI (registry/name); MissingImage when it does not exist."""
        try:
            found = self.ecr.describe_repositories(repositoryNames=[name])["repositories"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "RepositoryNotFoundException":
                raise MissingImage(f"ECR repository {name!r} does not exist in {self.region}; the platform stack "
                                   f"declares it (`invoke up`) for every service of infra/k8s/base") from None
            raise EcrError(f"describe_repositories {name}: {reason(exc)}") from None
        except BotoCoreError as exc:
            raise EcrError(f"describe_repositories {name}: {reason(exc)}") from None
        return found[0]["repositoryUri"]

    def has_tag(self, name: str, tag: str) -> bool:
        try:
            found = self.ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": tag}])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ImageNotFoundException":
                return False
            raise EcrError(f"describe_images {name}:{tag}: {reason(exc)}") from None
        except BotoCoreError as exc:
            raise EcrError(f"describe_images {name}:{tag}: {reason(exc)}") from None
        return bool(found.get("imageDetails"))

    def login(self) -> RegistryLogin:
        """Short-lived push credentials for the account's registry (what `aws ecr get-login-password` gives)."""
        try:
            data = self.ecr.get_authorization_token()["authorizationData"][0]
        except (ClientError, BotoCoreError) as exc:
            raise EcrError(f"get_authorization_token: {reason(exc)}") from None
        username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        return RegistryLogin(registry=urlsplit(data["proxyEndpoint"]).netloc or data["proxyEndpoint"],
                             username=username, password=password)
