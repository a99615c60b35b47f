"""Fixtures for deploy/rollout tests: kubesim (Kubernetes over HTTP) + moto server (ECR) wired to the real engines."""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer

import boto3
import pytest

from infra.identity import repository_name
from infra.ops.deploy import pipeline as deploy
from infra.ops.deploy import target as catalog
from infra.ops.deploy.report import Reporter
from infra.ops.deploy.requests import DeployRequest
from infra.ops.io.kube import Kube, from_kubeconfig

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


@pytest.fixture
def deploy_env(kubesim, aws) -> DeployEnv:
    kube = from_kubeconfig(kubesim.kubeconfig)
    kube.request("POST", "/api/v1/namespaces",
                 body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    ecr = boto3.client("ecr", region_name=REGION)
    for service in ("api", "worker", "scheduler"):  # named as the dev stack declares them
        ecr.create_repository(repositoryName=repository_name("dev", service))
        for tag in ("v1", "v2", "v3"):
            push(ecr, repository_name("dev", service), tag)
    uri = ecr.describe_repositories(repositoryNames=[repository_name("dev", "api")])["repositories"][0]["repositoryUri"]
    return DeployEnv(cluster=kubesim, kube=kube, ecr=ecr, uri=uri)


@pytest.fixture
def deployed_v1(deploy_env) -> DeployEnv:
    """api:v1 deployed and healthy: the 'previous version' of every failure test."""
    deploy_env.engine("v1").run()
    assert deploy_env.running_images() == {deploy_env.image("v1")}
    return deploy_env


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    """A `docker` on PATH that records argv and stdin, one JSON line per call."""
    log = tmp_path / "docker.log"
    script = tmp_path / "bin" / "docker"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\nimport json, sys\nstdin = '' if sys.stdin.isatty() else sys.stdin.read()\n"
                      f"open({str(log)!r}, 'a').write(json.dumps({{'argv': sys.argv[1:], 'stdin': stdin}}) + '\\n')\n"
                      f"sys.exit(3 if 'fail' in sys.argv else 0)\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return log


@pytest.fixture
def webhook():
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server naming
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200 if len(received) > 1 or "flaky" not in self.path else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
