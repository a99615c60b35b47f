"""Secrets under Pulumi mocks: KMS on every secret, per-service IRSA scope, rotation, delivery via ESO."""
from __future__ import annotations

import copy
import json

import pytest

from infra.config import from_mapping, load_stack_config, read_stack_file, secret_name
from infra.plan.offline import Plan, plan_config

SECRET = "aws:secretsmanager/secret:Secret"
ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"
INVOCATION = "aws:lambda/invocation:Invocation"
STORE = "kubernetes:external-secrets.io/v1:SecretStore"
EXTERNAL = "kubernetes:external-secrets.io/v1:ExternalSecret"


def _mine(plan: Plan, type_: str) -> list:
    """Resources of a type declared by the Secrets component (other components may declare the same types)."""
    return [r for r in plan.of_type(type_) if ":secrets:Secrets" in r.parent]


@pytest.fixture(scope="module")
def plans(stack_plans) -> dict[str, Plan]:
    return stack_plans


def _service_key(plan: Plan) -> str:
    (key,) = [key for key in plan.of_type("aws:kms/key:Key") if key.name == "secrets-key"]
    assert key.inputs["enableKeyRotation"] is True
    return plan.outputs["secretsKmsKeyArn"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_secret_is_encrypted_with_the_customer_managed_key(plans, env):
    plan = plans[env]
    cfg = load_stack_config(env)
    key_arn = _service_key(plan)
    secrets = _mine(plan, SECRET)
    assert {s.inputs["name"] for s in secrets} == {secret_name(env, svc, key) for svc, key, _ in cfg.secrets.entries()}
    for secret in secrets:
        assert secret.inputs["kmsKeyId"] == key_arn, f"{secret.name} must not use the AWS-managed key"
        assert secret.inputs["description"]
        assert secret.inputs["recoveryWindowInDays"] == cfg.secrets.recovery_window_days


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_no_value_is_declared_generated_values_are_made_in_aws(plans, env):
    plan = plans[env]
    assert not plan.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    assert not [r for r in plan.resources if r.type.startswith("random:")]
    first = {json.loads(i.inputs["input"])["SecretId"] for i in _mine(plan, INVOCATION)}
    generated = {s.inputs["name"] for s in _mine(plan, SECRET) if s.inputs["tags"]["eks-platform:kind"] == "generated"}
    arns = plan.outputs["secretArns"]
    assert first == {arns[name.split("/")[2]][name.split("/")[3]] for name in generated}
    for invocation in _mine(plan, INVOCATION):
        assert json.loads(invocation.inputs["input"])["Step"] == "initialize"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_a_database_login_is_never_invented_it_is_handed_over(plans, env):
    """A database secret starts empty: no initialize run (whose random password the database never had), and no
    rotation schedule until the config says the real credential was stored (`invoke secrets.set`)."""
    plan = plans[env]
    arns = plan.outputs["secretArns"]
    database = arns["api"]["database"]
    assert database not in {json.loads(i.inputs["input"])["SecretId"] for i in _mine(plan, INVOCATION)}
    assert not [r for r in _mine(plan, ROTATION) if r.inputs["secretId"].startswith("secrets-api-database")]


def test_a_handed_over_database_login_rotates_on_its_schedule():
    raw = copy.deepcopy(read_stack_file("prod"))
    raw["eks-platform:secrets"]["services"]["api"]["database"]["database"]["handed_over"] = True
    plan = plan_config(from_mapping("prod", raw), raw)
    (rotation,) = [r for r in _mine(plan, ROTATION) if r.inputs["secretId"].startswith("secrets-api-database")]
    assert rotation.inputs["rotationRules"]["automaticallyAfterDays"] == 30
    assert rotation.inputs["rotateImmediately"] is False


def test_rotation_schedules_only_in_prod_and_only_where_configured(plans):
    assert not _mine(plans["dev"], ROTATION)
    cfg = load_stack_config("prod")
    rotations = _mine(plans["prod"], ROTATION)
    wanted = [spec for _, _, spec in cfg.secrets.entries() if spec.rotation_days
              and (not spec.database or spec.database.handed_over)]
    assert sorted(r.inputs["rotationRules"]["automaticallyAfterDays"] for r in rotations) == sorted(
        spec.rotation_days for spec in wanted)
    (function,) = [f for f in plans["prod"].of_type("aws:lambda/function:Function") if f.name == "secrets-rotation"]
    assert function.inputs["handler"] == "secret_rotation.handler"
    assert function.inputs["vpcConfig"]["subnetIds"]
    assert function.inputs["reservedConcurrentExecutions"] >= 1
    for rotation in rotations:
        assert rotation.inputs["rotateImmediately"] is False
        assert rotation.inputs["rotationLambdaArn"].endswith(":function:eks-platform-prod-secret-rotation")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_service_role_reads_only_its_own_secrets_via_its_own_service_account(plans, env):
    plan = plans[env]
    cfg = load_stack_config(env)
    arns = plan.outputs["secretArns"]
    roles = {r.name: r for r in plan.of_type("aws:iam/role:Role")}
    policies = {p.name: p for p in plan.of_type("aws:iam/rolePolicy:RolePolicy")}
    for service in cfg.secrets.services:
        trust = json.loads(roles[f"secrets-{service}-reader"].inputs["assumeRolePolicy"])
        (condition,) = [s["Condition"]["StringEquals"] for s in trust["Statement"]]
        assert [v for k, v in condition.items() if k.endswith(":sub")] == [f"system:serviceaccount:apps-{env}:{service}"]
        statements = {s["Sid"]: s for s in json.loads(policies[f"secrets-{service}-reader"].inputs["policy"])["Statement"]}
        assert statements["ReadOwnSecrets"]["Action"] == ["secretsmanager:GetSecretValue",
                                                          "secretsmanager:DescribeSecret"]
        assert statements["ReadOwnSecrets"]["Resource"] == sorted(arns[service].values())
        others = {arn for svc, keys in arns.items() if svc != service for arn in keys.values()}
        assert not others & set(statements["ReadOwnSecrets"]["Resource"])
        decrypt = statements["DecryptViaSecretsManager"]
        assert decrypt["Resource"] == _service_key(plan)
        assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_external_secrets_operator_delivers_each_service_its_own_keys(plans, env):
    plan = plans[env]
    cfg = load_stack_config(env)
    (release,) = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "external-secrets"]
    assert release.inputs["chart"] == "external-secrets"
    assert release.inputs["version"] == cfg.secrets.eso_chart_version
    assert release.inputs["repositoryOpts"]["repo"] == "https://charts.external-secrets.io"
    stores = {s.inputs["metadata"]["name"]: s for s in plan.of_type(STORE)}
    externals = {e.inputs["metadata"]["name"]: e for e in plan.of_type(EXTERNAL)}
    accounts = {a.inputs["metadata"]["name"]: a for a in plan.of_type("kubernetes:core/v1:ServiceAccount")}
    assert not plan.of_type("kubernetes:external-secrets.io/v1:ClusterSecretStore")
    for service, keys in cfg.secrets.services.items():
        store = stores[f"{service}-aws"]
        assert store.inputs["metadata"]["namespace"] == f"apps-{env}"
        aws = store.inputs["spec"]["provider"]["aws"]
        assert aws["service"] == "SecretsManager" and aws["region"] == "eu-west-1"
        assert aws["auth"] == {"jwt": {"serviceAccountRef": {"name": service}}}
        external = externals[f"{service}-secrets"]
        spec = external.inputs["spec"]
        assert spec["secretStoreRef"] == {"name": f"{service}-aws", "kind": "SecretStore"}
        assert {d["secretKey"]: d["remoteRef"]["key"] for d in spec["data"]} == {
            key: secret_name(env, service, key) for key in keys}
        annotations = accounts[service].inputs["metadata"]["annotations"]
        assert annotations["eks.amazonaws.com/role-arn"] == plan.outputs["secretReaderRoleArns"][service]


def test_rotation_lambda_may_touch_only_generated_secrets(plans):
    plan = plans["prod"]
    (policy,) = [p for p in plan.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == "secrets-rotation"]
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    arns = plan.outputs["secretArns"]
    generated = [arns[service][key] for service, key, spec in load_stack_config("prod").secrets.entries()
                 if spec.kind != "external"]
    assert "worker" in str(generated) and arns["worker"]["queue-token"] not in generated  # both kinds are there
    assert statements["RotateGeneratedSecrets"]["Resource"] == sorted(generated)
    assert "secretsmanager:DeleteSecret" not in statements["RotateGeneratedSecrets"]["Action"]


def test_rotation_code_bundles_the_handler_and_its_postgres_driver():
    from infra.components.secrets import rotation_code

    assets = rotation_code().assets
    assert {"secret_rotation.py", "pg8000", "scramp", "asn1crypto", "dateutil", "six.py"} <= set(assets)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_service_reaches_the_database_its_secret_names_and_nothing_more(plans, env):
    """The services' own NetworkPolicies allow DNS and HTTPS only; the database port a secret points at is opened
    from config, for that service's pods, inside the VPC."""
    cfg = load_stack_config(env)
    wanted = {(service, spec.database.port) for service, _, spec in cfg.secrets.entries() if spec.database}
    assert wanted, "the stacks configure a database login"
    policies = {p.inputs["metadata"]["name"]: p for p in _mine(plans[env], "kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert set(policies) == {f"{service}-database-egress" for service, _ in wanted}
    for service, port in wanted:
        spec = policies[f"{service}-database-egress"].inputs["spec"]
        assert policies[f"{service}-database-egress"].inputs["metadata"]["namespace"] == f"apps-{env}"
        assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": service}}
        assert spec["policyTypes"] == ["Egress"] and "ingress" not in spec
        assert spec["egress"] == [{"to": [{"ipBlock": {"cidr": str(cfg.network.cidr)}}],
                                   "ports": [{"protocol": "TCP", "port": port}]}]


def test_database_egress_follows_the_configured_port(plans):
    raw = copy.deepcopy(read_stack_file("dev"))
    raw["eks-platform:secrets"]["services"]["api"]["database"]["database"]["port"] = 6432  # e.g. PgBouncer
    plan = plan_config(from_mapping("dev", raw), raw)
    ports = {p.inputs["metadata"]["name"]: p.inputs["spec"]["egress"][0]["ports"]
             for p in _mine(plan, "kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert ports["api-database-egress"] == [{"protocol": "TCP", "port": 6432}]
    assert ports["worker-database-egress"] == [{"protocol": "TCP", "port": 5432}]  # each login its own port
    (group,) = [g for g in plan.of_type("aws:ec2/securityGroup:SecurityGroup") if g.name == "secrets-rotation"]
    assert sorted(rule["fromPort"] for rule in group.inputs["egress"]) == [443, 5432, 6432]


def test_only_this_account_s_secrets_manager_may_invoke_the_rotation_function(plans):
    (permission,) = [p for p in plans["prod"].of_type("aws:lambda/permission:Permission") if p.name == "secrets-rotation"]
    assert permission.inputs["principal"] == "secretsmanager.amazonaws.com"
    assert permission.inputs["sourceAccount"] == "123456789012", "no confused deputy from another account"
