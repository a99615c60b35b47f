"""The deploy world: kubesim (Kubernetes over HTTP) + moto server (ECR) wired to the real engines; its fixtures are in
tests/support/fixtures/deploy.py."""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field

from infra.ops.deploy import pipeline as deploy
from infra.ops.deploy import target as catalog
from infra.ops.deploy.report import Reporter
from infra.ops.deploy.requests import DeployRequest
from infra.ops.io.kube import Kube

REGION = "eu-west-1"
NAMESPACE = "apps-dev"


def push(ecr, repository: str, tag: str) -> None:
    """Put an image manifest under `tag` (a distinct config digest per tag, like distinct builds)."""
    digest = hashlib.sha256(f"{repository}:{tag}".encode()).hexdigest()
    ecr.put_image(repositoryName=repository, imageTag=tag, imageManifest=json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "config": {"digest": f"sha256:{digest}", "size": 1,
                    "mediaType": "application/vnd.docker.container.image.v1+json"}, "layers": []}))


@dataclass
class DeployEnv:
    cluster: object           # tests.kubesim.Cluster
    kube: Kube
    ecr: object
    uri: str                  # ECR repository URI of `api`
    logs: list[io.StringIO] = field(default_factory=list)

    def image(self, tag: str) -> str:
        return f"{self.uri}:{tag}"

    def engine(self, tag: str | None, service: str = "api", **options) -> deploy.Deploy:
        """A Deploy of an existing ECR tag (None: build the git SHA), logging JSON lines into a buffer (see .output);
        `options` are DeployRequest fields."""
        log = io.StringIO()
        self.logs.append(log)
        options.setdefault("timeout_s", 30)
        options.setdefault("smoke_budget_s", 3)
        options.setdefault("allow_dirty", True)  # the dirty-tree rule has its own tests; these run in any work tree
        request = DeployRequest(catalog.resolve(service, "dev"), region=REGION, tag=tag, who="tester@ci pid 1",
                                **options)
        return deploy.Deploy(self.kube, request, reporter=Reporter(mode="json", stream=log))

    @property
    def output(self) -> str:
        return "".join(log.getvalue() for log in self.logs)

    def deployment(self, name: str = "api") -> dict:
        return self.kube.request("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}")

    def running_images(self, service: str = "api") -> set[str]:
        """Images of the service's pods that are Ready and not terminating."""
        return {c["image"] for p in self.cluster.pods(NAMESPACE, **{"app.kubernetes.io/name": service})
                if not p["metadata"].get("deletionTimestamp")
                and any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions") or [])
                for c in p["spec"]["containers"]}
