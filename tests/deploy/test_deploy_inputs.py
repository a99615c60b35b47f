"""Deploy inputs without a cluster: service/env resolution, git tag, ECR (moto server), docker wrapper, EKS token,
rendering with the image set, and the notification payloads."""
from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from infra.identity import repository_name
from infra.ops.deploy import notify, snapshot
from infra.ops.deploy import pipeline as deploy
from infra.ops.deploy import target as catalog
from infra.ops.deploy.history import DeployRecord
from infra.ops.deploy.requests import DeployRequest
from infra.ops.deploy.rollout import Reason
from infra.ops.io.docker_cli import Docker, DockerError
from infra.ops.io.ecr import MissingImage, Registry
from infra.ops.io.kube import EKS_TOKEN_TTL_S, eks_token, from_eks
from tests.support import REPO_ROOT
from tests.support.cli import invoke

REGION = "eu-west-1"
ROOT = REPO_ROOT


def test_resolve_lists_valid_services_and_envs():
    target = catalog.resolve("api", "dev")
    assert (target.namespace, target.manager) == ("apps-dev", "eks-platform-deploy-api")
    with pytest.raises(deploy.BadInput, match=r"'billing' is not in infra/k8s/base; use one of: api, scheduler, worker"):
        catalog.resolve("billing", "dev")
    with pytest.raises(deploy.BadInput, match=r"--env 'qa' has no overlay.*dev, prod"):
        catalog.resolve("api", "qa")


def test_invoke_deploy_bad_input_exits_2_with_one_line():
    run = invoke("deploy", "billing", "--env", "dev")
    assert run.returncode == 2
    assert run.stderr.strip() == ("error: service 'billing' is not in infra/k8s/base; use one of: api, scheduler, "
                                  "worker")
    run = invoke("rollback", "api", "--env", "dev", "--to-revision", "x")
    assert run.returncode == 2 and "--to-revision takes a revision number" in run.stderr


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_git_tag_is_short_sha_and_refuses_dirty_tree(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("1")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x")
    sha = _git(tmp_path, "rev-parse", "--short=12", "HEAD")
    assert catalog.git_tag(tmp_path) == sha
    (tmp_path / "f").write_text("2")
    with pytest.raises(deploy.BadInput, match="1 uncommitted change.*--allow-dirty"):
        catalog.git_tag(tmp_path)
    assert catalog.git_tag(tmp_path, allow_dirty=True) == sha


def test_without_git_on_path_both_paths_say_so(tmp_path, monkeypatch):
    """The build path needs git for the tag, the --tag path to prove infra/k8s is committed: each says what to do."""
    monkeypatch.setenv("PATH", str(tmp_path))  # a folder with no git in it
    with pytest.raises(deploy.BadInput, match=r"^git not found on PATH; install git or deploy an image with --tag$"):
        catalog.git_tag(ROOT)
    with pytest.raises(deploy.BadInput, match=r"^git not found on PATH; install git or pass --allow-dirty"):
        deploy.require_committed(catalog.resolve("api", "dev"))


def test_render_sets_the_image_and_only_the_services_objects():
    target = catalog.resolve("api", "dev")
    objects = catalog.render(target, "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:abc123")
    assert catalog.service_image(objects, "api") == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:abc123"
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("Deployment", "api") in names and ("Service", "api") in names
    assert not any(name in ("worker", "scheduler") for _, name in names)
    assert all(o["metadata"].get("namespace") == "apps-dev" for o in objects)


def test_validate_refuses_foreign_namespace():
    target = catalog.resolve("api", "dev")
    objects = catalog.render(target, "r/api:1")
    objects[0]["metadata"]["namespace"] = "kube-system"
    with pytest.raises(deploy.BadInput, match="not 'apps-dev'"):
        catalog.validate(objects, target, "r/api:1")


def test_dry_run_diff_redacts_secret_values():
    before = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
              "data": {"password": base64.b64encode(b"hunter2").decode()}}
    after = {**before, "data": {"password": base64.b64encode(b"hunter3").decode()}}
    text = "\n".join(snapshot.diff(before, after))
    assert "hunter" not in text and base64.b64encode(b"hunter3").decode() not in text
    assert "-  password: '[redacted " in text and "+  password: '[redacted " in text  # the change shows, not the value


# -- ECR on moto server ------------------------------------------------------------------------------------
API_REPOSITORY = repository_name("dev", "api")


@pytest.fixture
def ecr(aws):
    client = boto3.client("ecr", region_name=REGION)
    client.create_repository(repositoryName=API_REPOSITORY)  # as the dev stack declares it
    client.put_image(repositoryName=API_REPOSITORY, imageTag="v1", imageManifest=json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "config": {"digest": "sha256:" + "a" * 64, "size": 1, "mediaType": "application/vnd.docker.container.image.v1+json"},
         "layers": []}))
    return client


def test_registry_repository_tags_and_login(ecr):
    registry = Registry(REGION)
    assert registry.repository_uri(API_REPOSITORY).endswith(".dkr.ecr.eu-west-1.amazonaws.com/eks-platform/dev/api")
    assert registry.has_tag(API_REPOSITORY, "v1") and not registry.has_tag(API_REPOSITORY, "v2")
    with pytest.raises(MissingImage, match="'eks-platform/dev/worker' does not exist"):
        registry.repository_uri(repository_name("dev", "worker"))
    login = registry.login()
    assert login.username == "AWS" and login.password and login.password not in repr(login)


def test_missing_tag_is_bad_input_before_touching_the_cluster(ecr):
    engine = deploy.Deploy(kube=None, request=DeployRequest(catalog.resolve("api", "dev"), region=REGION, tag="nope"))
    with pytest.raises(deploy.BadInput, match="--tag nope is not in ECR repository eks-platform/dev/api"):
        engine.image()


def test_build_logs_in_with_password_on_stdin_and_pushes_the_sha(ecr, fake_docker, tmp_path, monkeypatch):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.setattr(deploy, "git_tag", lambda repo, allow_dirty=False: "0123456789ab")
    request = DeployRequest(catalog.resolve("api", "dev"), region=REGION, context=context)
    engine = deploy.Deploy(kube=None, request=request)
    tag, image = engine.image()
    assert tag == "0123456789ab" and image.endswith("/api:0123456789ab")
    calls = [json.loads(line) for line in fake_docker.read_text().splitlines()]
    login, build = calls
    assert login["argv"][:4] == ["login", "--username", "AWS", "--password-stdin"]
    assert login["stdin"] and login["stdin"] not in " ".join(login["argv"])
    assert build["argv"][:2] == ["buildx", "build"] and "--push" in build["argv"]
    assert build["argv"][build["argv"].index("--tag") + 1] == image and build["argv"][-1] == str(context)


def test_docker_failure_names_the_command(fake_docker):
    with pytest.raises(DockerError, match=r"`docker buildx build` failed \(exit 3\)"):
        Docker().build_push(Path("fail"), "img:1")


# -- EKS token ------------------------------------------------------------------------------------------
def test_eks_token_is_a_presigned_sts_url_binding_the_cluster(aws):
    token = eks_token("eks-dev", boto3.session.Session(region_name=REGION))
    assert token.startswith("k8s-aws-v1.") and "=" not in token
    raw = token.removeprefix("k8s-aws-v1.")
    url = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    query = parse_qs(urlsplit(url).query)
    assert query["Action"] == ["GetCallerIdentity"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0]
    assert query["X-Amz-Expires"] == ["60"]


def _eks_cluster() -> None:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="eks", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto3.client("eks", region_name=REGION).create_cluster(
        name="eks-dev", roleArn=role, resourcesVpcConfig={"subnetIds": []})


@pytest.mark.parametrize("uptime_s", [0.0, 5.0, 86_400.0])  # a CI runner just booted, ... a laptop up for a day
def test_from_eks_reads_endpoint_and_ca_from_describe_cluster(aws, uptime_s):
    _eks_cluster()
    kube = from_eks("eks-dev", REGION, clock=lambda: uptime_s)
    conf = kube.api.configuration
    assert conf.host.startswith("https://")
    assert conf.api_key["authorization"].startswith("k8s-aws-v1.")
    assert conf.api_key_prefix == {"authorization": "Bearer"}


def test_from_eks_refreshes_the_token_once_it_is_due(aws):
    _eks_cluster()
    now = [3.0]
    conf = from_eks("eks-dev", REGION, clock=lambda: now[0]).api.configuration
    conf.api_key = {"authorization": "the first token"}
    now[0] += EKS_TOKEN_TTL_S - 1
    conf.refresh_api_key_hook(conf)
    assert conf.api_key == {"authorization": "the first token"}, "not due yet: kept"
    now[0] += 1
    conf.refresh_api_key_hook(conf)
    assert conf.api_key["authorization"].startswith("k8s-aws-v1."), "due: a fresh STS token"


# -- notifications ---------------------------------------------------------------------------------------
RECORD = DeployRecord(service="api", env="dev", action="deploy", tag="abc", image="r/api:abc", who="ci", started="t0",
                      finished="t1", verdict=Reason.ImagePullBackOff, ok=False, rolled_back=True,
                      rollback_verdict="Complete", message="ImagePullBackOff (pod api-1): not found")


def test_webhook_posts_slack_compatible_summary_and_retries_5xx(webhook):
    url, received = webhook
    assert notify.post_webhook(RECORD, url=f"{url}/flaky/token-xyz") is None
    assert len(received) == 2  # the 503 was retried
    body = received[-1]
    assert body["text"].startswith(":x: deploy api:abc to dev failed: ImagePullBackOff; rolled back (Complete)")
    assert body["blocks"][0]["type"] == "section" and body["deploy"]["image"] == "r/api:abc"


def test_webhook_failure_is_a_warning_without_the_url_secret():
    warning = notify.post_webhook(RECORD, url="http://127.0.0.1:9/services/T000/SECRET", budget_s=0.5)
    assert warning and "127.0.0.1" in warning and "SECRET" not in warning


@pytest.mark.parametrize("where", ["a directory", "/dev/full", "a missing folder"])
def test_a_step_summary_that_cannot_be_written_is_a_warning(tmp_path, where):
    """GITHUB_STEP_SUMMARY is best effort like the webhook: a path that cannot take the summary is a warning line."""
    path = {"a directory": str(tmp_path), "/dev/full": "/dev/full", "a missing folder": str(tmp_path / "no" / "x.md")}
    warning = notify.write_step_summary([RECORD], path[where])
    assert warning and warning.startswith("warning: step summary not written to GITHUB_STEP_SUMMARY=")
    assert "deploy result stands" in warning


def test_step_summary_markdown(tmp_path):
    path = tmp_path / "summary.md"
    assert notify.write_step_summary([RECORD], str(path)) is None
    text = path.read_text()
    assert text.startswith("### :x: deploy api:abc to dev failed: ImagePullBackOff; rolled back (Complete)")
    assert "| image | r/api:abc |" in text and "| rollback verdict | Complete |" in text


# -- output ----------------------------------------------------------------------------------------------
def test_reporter_plain_json_and_rich_lines():
    import io

    from infra.ops.deploy.report import Reporter
    from infra.ops.deploy.rollout import Progress

    plain, as_json, rich = io.StringIO(), io.StringIO(), io.StringIO()
    Reporter(mode="plain", stream=plain).event("apply", "applied 3 objects", objects=3)
    assert plain.getvalue() == 'event=apply objects=3 message="applied 3 objects"\n'
    Reporter(mode="json", stream=as_json).progress("rollout api", Progress(desired=3, updated=2, ready=1,
                                                                           available=1, total=4))
    line = json.loads(as_json.getvalue())
    assert (line["event"], line["updated"], line["old"]) == ("progress", 2, 2)
    assert line["message"] == "2/3 updated, 1 ready, 1 available, 2 old"
    reporter = Reporter(mode="rich", stream=rich)
    reporter.progress("rollout api", Progress(desired=1))
    reporter.done()
    reporter.event("diff", "data: [redacted 1a2b3c4d]")
    assert "[redacted 1a2b3c4d]" in rich.getvalue()  # brackets are text, not rich markup


def test_readiness_grace_comes_from_the_probes():
    from infra.ops.deploy.rollout import readiness_grace

    target = catalog.resolve("api", "dev")
    template = catalog.workload(catalog.render(target, "r/api:1"), "api")["spec"]["template"]
    startup, readiness = readiness_grace(template)
    assert startup == 2 * 30 + 2          # startupProbe period x failureThreshold + timeout
    assert readiness == 5 * 2 + 2 + 5     # readinessProbe period x failureThreshold + timeout + one period
