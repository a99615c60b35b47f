"""Never the wrong cluster: every cluster task proves the API server it reached is its stack's (the identity
ConfigMap the platform declares) and secrets tasks that the AWS account holds the stack's secrets key, before
anything else; otherwise exit 2, one line naming both, nothing changed. Tasks run as a user runs them
(tests/support/cli.py) against kubesim over HTTP and moto, in a copy of the project so a task that got past a
missing proof could not change the real stack files."""
from __future__ import annotations

import boto3
import pytest

from infra.config import load_stack_config
from infra.identity import NAME, NAMESPACE, READER, READERS_GROUP, identity_of, secrets_key_alias, secrets_key_tags
from infra.ops import identity
from infra.ops.errors import explain
from infra.ops.io.kube import from_kubeconfig
from tests.support.cli import invoke, one_line_error
from tests.support.fake_pulumi import FakePulumi, seed_eks
from tests.support.identity import IDENTITY_PATH, declare_identity, declare_secrets_key
from tests.support.project import copy_task_files

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
K8S_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
K8S_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
OUTPUTS = {"clusterName": "eks-dev", "authenticationMode": "API_AND_CONFIG_MAP"}

# Every task that reads or changes a cluster, with arguments that pass its own input checks.
CLUSTER_TASKS = {
    "deploy": ["deploy", "api", "--env", "dev", "--tag", "v1"],
    "rollback": ["rollback", "api", "--env", "dev"],
    "history": ["history", "api", "--env", "dev"],
    "nodes.migrate": ["nodes.migrate", "--env", "dev", "--pool", "general", "--to", "green"],
    "cluster.upgrade": ["cluster.upgrade", "--env", "dev", "--to", "1.36"],
    "platform.status": ["platform.status", "--env", "dev"],
    "access.migrate": ["access.migrate", "--env", "dev", "--to", "API"],
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project (tasks, stack files, infra) with a recording fake `pulumi` first on PATH."""
    return copy_task_files(tmp_path_factory.mktemp("project"))


@pytest.fixture
def pulumi(project, tmp_path) -> FakePulumi:
    return FakePulumi(tmp_path, outputs=OUTPUTS)


def _run(project, pulumi: FakePulumi | None, *args: str, stdin: str | None = None, **env: str):
    """`invoke ARGS` in the project copy, with this test's fake `pulumi` (if any) first on PATH."""
    return invoke(*args, cwd=project, stdin=stdin, env={**(pulumi.env() if pulumi else {}), **env})


def _stack_files(project) -> dict[str, str]:
    return {name: (project / name).read_text() for name in ("Pulumi.dev.yaml", "Pulumi.prod.yaml")}


# --- refusals: another stack's cluster, a cluster with no identity ---------------------------------------------

@pytest.mark.parametrize("task", CLUSTER_TASKS)
def test_a_kubeconfig_at_another_stacks_cluster_is_refused_before_anything(task, kubesim, project, tmp_path,
                                                                           pulumi):
    declare_identity(kubesim, "prod")
    before = _stack_files(project)
    kubesim.requests.clear()
    result = _run(project, pulumi, *CLUSTER_TASKS[task], KUBECONFIG=kubesim.kubeconfig)
    line = one_line_error(result, 2, "refusing to act on dev", "kubeconfig context 'kubesim'", kubesim.url,
                          "stack prod's cluster eks-prod (eu-west-1)", "not stack dev's cluster eks-dev (eu-west-1)",
                          "aws eks update-kubeconfig --name eks-dev --region eu-west-1", "--kubeconfig")
    assert line.startswith("error: ")
    assert {(method, path) for method, path, _ in kubesim.requests} == {("GET", "/version"), ("GET", IDENTITY_PATH)}, \
        "the connect check and the identity are the only things read, and nothing is written"
    _assert_unchanged(kubesim, project, before, pulumi)


@pytest.mark.parametrize("task", CLUSTER_TASKS)
def test_a_cluster_without_identity_is_refused_before_anything(task, kubesim, project, tmp_path, pulumi):
    before = _stack_files(project)
    kubesim.requests.clear()
    result = _run(project, pulumi, *CLUSTER_TASKS[task], "--kubeconfig", kubesim.kubeconfig)
    one_line_error(result, 2, f"kubeconfig context 'kubesim' ({kubesim.url}) has no eks-platform identity "
                              f"(ConfigMap {NAMESPACE}/{NAME}), so it is not proven to be stack dev's cluster eks-dev "
                              f"(eu-west-1)",
                   "aws eks update-kubeconfig --name eks-dev --region eu-west-1")
    assert {(method, path) for method, path, _ in kubesim.requests} == {("GET", "/version"), ("GET", IDENTITY_PATH)}
    _assert_unchanged(kubesim, project, before, pulumi)


def _assert_unchanged(kubesim, project, before, pulumi) -> None:
    assert kubesim.store.get("namespaces/apps-dev") is None
    assert kubesim.store.list("deployments", None)[0] == []
    config_maps = {cm["metadata"]["name"] for cm in kubesim.store.list("configmaps", None)[0]}
    assert config_maps <= {NAME}, f"no checkpoint, history or lock was written: {config_maps}"
    assert all(not node["spec"].get("unschedulable") for node in kubesim.nodes()), "no node was cordoned"
    assert _stack_files(project) == before
    assert pulumi.ups() == []


@pytest.mark.parametrize(("mismatch", "said"), [
    ({"region": "us-east-1"}, "is stack dev's cluster eks-dev (us-east-1), not"),
    ({"cluster": "eks-qa"}, "is stack dev's cluster eks-qa (eu-west-1), not"),
    ({"project": "someone-else"}, f"has a ConfigMap {NAMESPACE}/{NAME} that names no eks-platform stack "
                                  f"(project=someone-else, stack=dev, cluster=eks-dev, region=eu-west-1), so it is "
                                  f"not proven to be"),
], ids=["region", "cluster", "project"])
def test_any_field_that_differs_refuses(kubesim, mismatch, said):
    declare_identity(kubesim, "dev", **mismatch)
    kube = from_kubeconfig(kubesim.kubeconfig)
    with pytest.raises(identity.WrongCluster) as refused:
        identity.prove(kube, load_stack_config("dev"), kubesim.kubeconfig)
    assert refused.value.exit_code == 2
    assert f"{said} stack dev's cluster eks-dev (eu-west-1);" in str(refused.value)


def test_straight_from_eks_a_cluster_without_identity_is_refused_and_says_to_finish_up(kubesim, monkeypatch):
    """No kubeconfig: the endpoint is the stack's cluster by name, but a cluster whose platform was never declared
    (a `pulumi up` that stopped early) is still refused; the fix is `invoke up`, not another kubeconfig."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    kube = from_kubeconfig(kubesim.kubeconfig)  # stands in for kube.from_eks: same Kube, no kubeconfig named
    with pytest.raises(identity.WrongCluster) as refused:
        identity.prove(kube, load_stack_config("prod"))
    message = str(refused.value)
    assert message == (f"refusing to act on prod: EKS cluster eks-prod (eu-west-1) at {kubesim.url} has no "
                       f"eks-platform identity (ConfigMap {NAMESPACE}/{NAME}), so it is not proven to be stack "
                       f"prod's cluster eks-prod (eu-west-1); run `invoke up --env prod` so the platform declares it")
    declare_identity(kubesim, "dev", cluster="eks-prod")
    with pytest.raises(identity.WrongCluster, match="is stack dev's cluster eks-prod .*, not stack prod's cluster "
                                                    "eks-prod .*; two stacks claim one cluster: check "
                                                    "eks-platform:cluster.name in Pulumi.prod.yaml"):
        identity.prove(kube, load_stack_config("prod"))


def test_an_identity_this_user_may_not_read_fails_with_exit_1_and_the_grant_to_look_for(kubesim):
    declare_identity(kubesim, "dev")
    kubesim.inject_fault("GET", f"^{IDENTITY_PATH}$", status=403, message=f'configmaps "{NAME}" is forbidden')
    with pytest.raises(identity.IdentityUnreadable) as failed:
        identity.prove(from_kubeconfig(kubesim.kubeconfig), load_stack_config("dev"), kubesim.kubeconfig)
    assert explain(failed.value).exit_code == 1
    assert f"reading ConfigMap {NAMESPACE}/{NAME} was denied" in str(failed.value)
    assert READERS_GROUP in str(failed.value) and "forbidden" in str(failed.value)


# --- the matching cluster: tasks go on ------------------------------------------------------------------------

def test_matching_cluster_history_proceeds(kubesim, project, tmp_path):
    declare_identity(kubesim, "dev")
    assert identity.prove(from_kubeconfig(kubesim.kubeconfig), load_stack_config("dev"),
                          kubesim.kubeconfig) == identity_of(load_stack_config("dev"))
    result = _run(project, None, "history", "api", "--env", "dev", KUBECONFIG=kubesim.kubeconfig)
    assert result.returncode == 0, result.stderr
    assert "no deploys of api in dev recorded yet" in result.stdout


def test_matching_cluster_deploy_dry_run_proceeds_and_applies_nothing(deploy_env):
    declare_identity(deploy_env.cluster, "dev")
    result = invoke("deploy", "api", "--env", "dev", "--tag", "v1", "--dry-run", "--kubeconfig",
                    deploy_env.cluster.kubeconfig)
    assert result.returncode == 0, result.stderr
    assert "dry run: nothing applied" in result.stdout and "Deployment" in result.stdout
    assert deploy_env.cluster.store.list("deployments", "apps-dev")[0] == []


def test_matching_cluster_upgrade_plan_and_status_proceed(kubesim, aws, project, tmp_path, pulumi):
    cfg = load_stack_config("dev")
    seed_eks(cfg)
    declare_identity(kubesim, "dev")
    upgrade = _run(project, pulumi, "cluster.upgrade", "--env", "dev", "--to", "1.36", "--plan-only",
                   "--kubeconfig", kubesim.kubeconfig)
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout.startswith("# Upgrade eks-dev (dev) from 1.35 to 1.36")
    status = _run(project, pulumi, "platform.status", "--env", "dev", "--json", "--kubeconfig", kubesim.kubeconfig)
    assert status.returncode == 0, status.stderr
    assert '"node_groups"' in status.stdout


def test_matching_cluster_access_migrate_dry_run_proceeds(kubesim, project, tmp_path, pulumi):
    declare_identity(kubesim, "dev")
    before = _stack_files(project)
    result = _run(project, pulumi, "access.migrate", "--env", "dev", "--to", "API", "--dry-run",
                  "--kubeconfig", kubesim.kubeconfig)
    assert result.returncode == 0, result.stderr
    assert "would verify every aws-auth mapping has an access entry, then move to API" in result.stdout
    assert _stack_files(project) == before and pulumi.ups() == []


def test_access_migrate_refuses_going_back_before_asking_any_cluster(project, tmp_path):
    result = _run(project, None, "access.migrate", "--env", "dev", "--to", "CONFIG_MAP",
                  KUBECONFIG=str(tmp_path / "no-such-kubeconfig"))
    one_line_error(result, 2, "--to CONFIG_MAP would go back from API_AND_CONFIG_MAP")


# --- secrets: the AWS account must hold the stack's secrets key -------------------------------------------------

QUEUE_TOKEN = "eks-platform/dev/worker/queue-token"


def _queue_token_secret() -> None:
    boto3.client("secretsmanager", region_name="eu-west-1").create_secret(Name=QUEUE_TOKEN, Description="token")


def _versions() -> dict:
    return boto3.client("secretsmanager", region_name="eu-west-1").describe_secret(
        SecretId=QUEUE_TOKEN).get("VersionIdsToStages", {})


@pytest.mark.parametrize("task", ["secrets.set", "secrets.list"])
def test_secrets_in_an_account_without_the_stacks_key_are_refused(aws, task, project, tmp_path):
    declare_secrets_key("prod")  # the account holds another stack's secrets, not dev's
    _queue_token_secret()
    args = ["secrets.set", "--env", "dev", "worker", "queue-token"] if task == "secrets.set" else \
        ["secrets.list", "--env", "dev"]
    result = _run(project, None, *args, stdin="a-token-value\n")
    one_line_error(result, 2, "refusing to touch dev's secrets: AWS account 123456789012 in eu-west-1 has no "
                              f"{secrets_key_alias('dev')}", "not dev's account", "AWS_PROFILE",
                   "invoke up --env dev")
    assert _versions() == {}, "no value was written"
    assert "a-token-value" not in result.stdout + result.stderr


def test_secrets_key_of_another_stack_under_the_alias_is_refused(aws, project, tmp_path):
    declare_secrets_key("dev", tags=secrets_key_tags("prod"))
    _queue_token_secret()
    result = _run(project, None, "secrets.set", "--env", "dev", "worker", "queue-token", stdin="a-token\n")
    one_line_error(result, 2, f"has {secrets_key_alias('dev')} but its key is tagged project=eks-platform, "
                              "environment=prod, not project=eks-platform, environment=dev")
    assert _versions() == {}


def test_secrets_in_the_stacks_account_proceed(aws, project, tmp_path):
    arn = declare_secrets_key("dev")
    _queue_token_secret()
    assert identity.prove_secrets(load_stack_config("dev")) == arn
    listing = _run(project, None, "secrets.list", "--env", "dev", "--json")
    assert listing.returncode == 0, listing.stderr
    assert QUEUE_TOKEN in listing.stdout
    stored = _run(project, None, "secrets.set", "--env", "dev", "worker", "queue-token", stdin="a-token\n")
    assert stored.returncode == 0, stored.stderr
    assert len(_versions()) == 1


# --- what the Pulumi program declares --------------------------------------------------------------------------

def _one(plan, type_: str, name: str, namespace: str | None = NAMESPACE):
    found = [r for r in plan.of_type(type_) if r.inputs["metadata"]["name"] == name
             and r.inputs["metadata"].get("namespace") == namespace]
    assert len(found) == 1, f"expected one {type_} {namespace}/{name}, got {len(found)}"
    return found[0]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_platform_declares_the_identity_every_authenticated_user_may_read(stack_plans, env):
    plan, cfg = stack_plans[env], load_stack_config(env)
    config_map = _one(plan, CONFIG_MAP, NAME)
    assert config_map.inputs["data"] == {"project": "eks-platform", "stack": env, "cluster": cfg.cluster.name,
                                         "region": cfg.region}
    assert config_map.inputs["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "eks-platform"}
    assert config_map.parent.endswith("eks-platform:platform:Platform::platform")
    role = _one(plan, K8S_ROLE, READER)
    assert role.inputs["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [NAME],
                                     "verbs": ["get"]}]
    binding = _one(plan, K8S_BINDING, READER)
    assert binding.inputs["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": READER}
    assert binding.inputs["subjects"] == [{"kind": "Group", "name": "system:authenticated",
                                           "apiGroup": "rbac.authorization.k8s.io"}]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_secrets_key_carries_the_alias_and_tags_the_proof_checks(stack_plans, env):
    plan = stack_plans[env]
    (alias,) = [a for a in plan.of_type("aws:kms/alias:Alias") if a.inputs["name"] == secrets_key_alias(env)]
    (key,) = [k for k in plan.of_type("aws:kms/key:Key") if k.name == alias.name]
    assert secrets_key_tags(env).items() <= key.inputs["tags"].items()
