"""The traffic edge under Pulumi mocks, for both real stack files: controller, IRSA, certificate, DNS, class."""
from __future__ import annotations

import json

import pytest

from infra.charts import CHARTS
from infra.components.edge import CONTROLLER_POLICY
from infra.config import ConfigError, from_mapping, load_stack_config, read_stack_file
from infra.plan.offline import Plan, PlannedResource, plan_config
from infra.sections.edge import TLS_POLICY
from tests.support.cli import invoke
from tests.support.project import copy_task_files

RELEASE = "kubernetes:helm.sh/v3:Release"
RECORD = "aws:route53/record:Record"


@pytest.fixture(params=["dev", "prod"])
def stack(request, stack_plans) -> tuple[str, Plan]:
    return request.param, stack_plans[request.param]


def one(plan: Plan, type_: str, name: str) -> PlannedResource:
    [found] = [r for r in plan.of_type(type_) if r.name == name]
    return found


def release(plan: Plan, chart: str) -> PlannedResource:
    [found] = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] == chart]
    return found


def trust_subject(role: PlannedResource) -> tuple[str, str]:
    [statement] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    conditions = statement["Condition"]["StringEquals"]
    subject = next(value for key, value in conditions.items() if key.endswith(":sub"))
    audience = next(value for key, value in conditions.items() if key.endswith(":aud"))
    return subject, audience


def test_controller_runs_pinned_on_the_platform_nodes_with_pdb_and_priority(stack):
    env, plan = stack
    cfg = load_stack_config(env)
    controller = release(plan, "aws-load-balancer-controller")
    values = controller.inputs["values"]
    assert controller.inputs["version"] == CHARTS["aws-load-balancer-controller"].version == "3.7.0"
    assert controller.inputs["namespace"] == "kube-system" and controller.inputs["atomic"] is True
    assert (values["clusterName"], values["region"]) == (cfg.cluster.name, cfg.region)
    assert values["vpcId"].startswith("network-vpc-")  # pods cannot read it from IMDS (hop limit 1)
    assert values["replicaCount"] == 2 and values["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert values["priorityClassName"] == "platform"
    assert {"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]
    assert values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].endswith("/edge-controller")
    assert values["createIngressClassResource"] is False and values["enableServiceMutatorWebhook"] is False


def test_controller_role_trusts_only_its_service_account_and_carries_the_upstream_policy(stack):
    _, plan = stack
    role = one(plan, "aws:iam/role:Role", "edge-controller")
    assert trust_subject(role) == ("system:serviceaccount:kube-system:aws-load-balancer-controller",
                                   "sts.amazonaws.com")
    policy = json.loads(one(plan, "aws:iam/rolePolicy:RolePolicy", "edge-controller").inputs["policy"])
    assert policy == json.loads(CONTROLLER_POLICY.read_text())
    assert len(one(plan, "aws:iam/rolePolicy:RolePolicy", "edge-controller").inputs["policy"]) < 10_240


def test_external_dns_may_write_the_stacks_zone_only(stack):
    env, plan = stack
    edge = load_stack_config(env).edge
    assert trust_subject(one(plan, "aws:iam/role:Role", "edge-dns"))[0] == \
        "system:serviceaccount:kube-system:external-dns"
    policy = json.loads(one(plan, "aws:iam/rolePolicy:RolePolicy", "edge-dns").inputs["policy"])
    writes = [s for s in policy["Statement"] if "route53:ChangeResourceRecordSets" in s["Action"]]
    assert writes == [{"Effect": "Allow", "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets",
                                                     "route53:ListTagsForResources"],
                       "Resource": [f"arn:aws:route53:::hostedzone/{edge.zone_id}"]}]
    values = release(plan, "external-dns").inputs["values"]
    assert values["domainFilters"] == [edge.zone_name] and values["txtOwnerId"] == f"eks-{env}"
    assert f"--zone-id-filter={edge.zone_id}" in values["extraArgs"] and "--ingress-class=alb" in values["extraArgs"]


def test_certificate_covers_the_hostnames_and_is_validated_through_the_zone(stack):
    env, plan = stack
    edge = load_stack_config(env).edge
    cert = one(plan, "aws:acm/certificate:Certificate", "edge-certificate")
    assert [cert.inputs["domainName"], *cert.inputs.get("subjectAlternativeNames", [])] == edge.names
    assert cert.inputs["validationMethod"] == "DNS"
    records = [r for r in plan.of_type(RECORD) if r.name.startswith("edge-validation-")]
    assert [r.name for r in records] == [f"edge-validation-{service}" for service in edge.hostnames]
    for record in records:
        assert record.inputs["zoneId"] == edge.zone_id and record.inputs["type"] == "CNAME"
        assert record.inputs["name"].endswith(f"{edge.hostnames[record.name.removeprefix('edge-validation-')]}.")
    validation = one(plan, "aws:acm/certificateValidation:CertificateValidation", "edge-certificate")
    assert validation.inputs["validationRecordFqdns"] == [r.inputs["name"].rstrip(".") for r in records]


def test_the_class_serves_the_validated_certificate_with_the_modern_tls_policy(stack):
    env, plan = stack
    params = one(plan, "kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams", "edge-class-params").inputs
    validation = one(plan, "aws:acm/certificateValidation:CertificateValidation", "edge-certificate")
    assert params["metadata"]["name"] == "alb"
    spec = params["spec"]
    assert spec["sslPolicy"] == TLS_POLICY == "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
    assert spec["certificateArn"] == [validation.inputs["certificateArn"]]
    assert (spec["scheme"], spec["group"]["name"]) == ("internet-facing", f"eks-{env}-public")
    assert spec["namespaceSelector"]["matchExpressions"][0]["values"] == [f"apps-{env}"]
    assert "wafv2AclArn" not in spec
    ingress_class = one(plan, "kubernetes:networking.k8s.io/v1:IngressClass", "edge-class").inputs
    assert ingress_class["spec"] == {"controller": "ingress.k8s.aws/alb", "parameters": {
        "apiGroup": "elbv2.k8s.aws", "kind": "IngressClassParams", "name": "alb"}}


def test_app_namespaces_get_readiness_gates(stack):
    env, plan = stack
    [namespace] = [r for r in plan.of_type("kubernetes:core/v1:Namespace")
                   if r.inputs["metadata"]["name"] == f"apps-{env}"]
    assert namespace.inputs["metadata"]["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"


def test_outputs_name_the_certificate_hostnames_and_controller_role(stack):
    env, plan = stack
    assert plan.outputs["edgeHostnames"] == dict(load_stack_config(env).edge.hostnames)
    assert plan.outputs["loadBalancerControllerRoleArn"].endswith(f":role/eks-platform-{env}/edge-controller")  # stack path


def _with_edge(env: str, **changes) -> dict:
    raw = read_stack_file(env)
    raw["eks-platform:edge"] = {**raw["eks-platform:edge"], **changes}
    return raw


def test_a_waf_acl_reaches_the_class():
    arn = "arn:aws:wafv2:eu-west-1:222222222222:regional/webacl/edge/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
    raw = _with_edge("prod", waf_acl_arn=arn)
    plan = plan_config(from_mapping("prod", raw), raw)
    params = one(plan, "kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams", "edge-class-params").inputs
    assert params["spec"]["wafv2AclArn"] == arn


def test_a_stack_without_an_edge_declares_none_of_it():
    raw = read_stack_file("dev")
    del raw["eks-platform:edge"]
    plan = plan_config(from_mapping("dev", raw), raw)
    assert not [r for r in plan.resources if r.name.startswith("edge")]
    assert "edgeHostnames" not in plan.outputs


@pytest.mark.parametrize("changes, key, words", [
    ({"hostnames": {"api": "api.example.org"}}, "eks-platform:edge.hostnames.api",
     "api.example.org is not in the hosted zone dev.example.com"),
    ({"zone_id": "/hostedzone/Z123"}, "eks-platform:edge.zone_id", "is not a Route 53 hosted zone ID"),
    ({"tls_policy": "ELBSecurityPolicy-2016-08"}, "eks-platform:edge.tls_policy", "TLS 1.2+/1.3 policies"),
    ({"waf_acl_arn": "arn:aws:wafv2:us-east-1:111111111111:regional/webacl/x/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"},
     "eks-platform:edge.waf_acl_arn", "but the load balancer is in eu-west-1"),
])
def test_bad_edge_config_names_the_key(changes, key, words):
    with pytest.raises(ConfigError) as raised:
        from_mapping("dev", _with_edge("dev", **changes))
    [issue] = raised.value.issues
    assert issue.key == key and words in issue.problem


def test_invoke_plan_exits_2_naming_a_hostname_outside_the_zone(tmp_path):
    copy_task_files(tmp_path)
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("api: api.dev.example.com", "api: api.example.org"))
    result = invoke("plan", "--env", "dev", cwd=tmp_path, env={"COLUMNS": "200"})
    assert result.returncode == 2
    assert "eks-platform:edge.hostnames.api" in result.stderr and "Traceback" not in result.stderr
