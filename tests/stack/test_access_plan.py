"""Cluster access under Pulumi mocks: CI trust, namespaced RBAC, aws-auth vs access entries, IAM scope."""
from __future__ import annotations

import json

import pytest

from infra.config import from_mapping, load_stack_config, read_stack_file, without_path
from infra.plan.offline import Plan, plan_config

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
K8S_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
K8S_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
AWS_AUTH = "kubernetes:core/v1:ConfigMapPatch"
ENTRY = "aws:eks/accessEntry:AccessEntry"
ASSOCIATION = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def deployer(env: str) -> str:
    """The mocks' ARN of the pulumi-deployer role (under the CI path, out of its own reach)."""
    return f"arn:aws:iam::123456789012:role/eks-platform-{env}-ci/eks-platform-{env}-pulumi-deployer"


# Written out here, independently of infra/components/access.py: the CI group's whole Kubernetes power.
READ = {"get", "list", "watch"}
ROLL = READ | {"create", "update", "patch"}
MANAGE = ROLL | {"delete"}
EXPECTED_CI_GRANTS = {
    ("apps", "deployments"): ROLL, ("batch", "cronjobs"): ROLL, ("apps", "replicasets"): READ,
    ("", "pods"): READ, ("", "events"): READ,
    ("", "services"): MANAGE, ("", "configmaps"): MANAGE, ("", "serviceaccounts"): MANAGE,
    ("", "services/proxy"): {"get"},
    ("networking.k8s.io", "ingresses"): MANAGE, ("networking.k8s.io", "networkpolicies"): MANAGE,
    ("autoscaling", "horizontalpodautoscalers"): MANAGE, ("policy", "poddisruptionbudgets"): MANAGE,
    ("coordination.k8s.io", "leases"): MANAGE,
}


@pytest.fixture(scope="module")
def plans(stack_plans) -> dict[str, Plan]:
    return stack_plans


def _variant(env: str, access: dict) -> Plan:
    raw = dict(read_stack_file(env))
    raw["eks-platform:access"] = access
    return plan_config(from_mapping(env, raw), raw)


def _roles(plan: Plan) -> dict[str, dict]:
    return {role.inputs.get("name") or role.name: role for role in plan.of_type(ROLE)}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_ci_roles_trust_exactly_one_repository_environment_with_sts_audience(plans, env):
    cfg = load_stack_config(env)
    github = cfg.access.github
    roles = _roles(plans[env])
    (provider,) = plans[env].of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert provider.inputs["url"] == "https://token.actions.githubusercontent.com"
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    for role_name, environment in ((f"eks-platform-{env}-ci-deployer", github.deploy_environment),
                                   (f"eks-platform-{env}-pulumi-deployer", github.infra_environment)):
        trust = json.loads(roles[role_name].inputs["assumeRolePolicy"])
        (statement,) = trust["Statement"]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert list(statement["Principal"]) == ["Federated"]
        assert statement["Principal"]["Federated"].endswith(f":{provider.name}"), "trusts the declared provider"
        assert statement["Condition"] == {"StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": f"repo:acme-platform/eks-platform:environment:{environment}"}}


def test_configured_oidc_provider_is_reused_not_created():
    access = read_stack_file("dev")["eks-platform:access"]
    arn = "arn:aws:iam::111111111111:oidc-provider/token.actions.githubusercontent.com"
    plan = _variant("dev", {**access, "github": {**access["github"], "oidc_provider_arn": arn}})
    assert not plan.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    trust = json.loads(_roles(plan)["eks-platform-dev-ci-deployer"].inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Federated": arn}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_ci_group_role_grants_exactly_the_listed_verbs_in_the_app_namespace_only(plans, env):
    plan = plans[env]
    (role,) = [role for role in plan.of_type(K8S_ROLE) if "Access" in role.parent]
    assert role.inputs["metadata"]["namespace"] == f"apps-{env}"
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role.inputs["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    assert grants == EXPECTED_CI_GRANTS
    assert not {resource for _, resource in grants} & {"secrets", "roles", "rolebindings", "pods/exec"}
    (binding,) = [binding for binding in plan.of_type(K8S_BINDING) if "Access" in binding.parent]
    assert binding.inputs["metadata"]["namespace"] == f"apps-{env}"
    assert binding.inputs["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                         "name": "ci-deployer"}
    assert binding.inputs["subjects"] == [{"kind": "Group", "name": "eks-platform:ci-deployers",
                                           "apiGroup": "rbac.authorization.k8s.io"}]
    cluster_wide = [r for r in plan.resources if r.type.startswith("kubernetes:rbac.authorization.k8s.io/v1:Cluster")
                    and "Access" in r.parent]
    assert not cluster_wide


def _map_roles(plan: Plan) -> list[dict]:
    """aws-auth as pulumi-eks writes it: the role mappings the program hands to eks.Cluster."""
    (cluster,) = plan.of_type("eks:index:Cluster")
    return [{"rolearn": m["roleArn"], "username": m["username"], "groups": m["groups"]}
            for m in cluster.inputs.get("roleMappings") or []]


def _principal_entries(plan: Plan) -> dict[str, object]:
    """Access entries of the mapped principals (the previewer's read-only entry is not one of them)."""
    return {e.inputs["principalArn"]: e for e in plan.of_type(ENTRY) if e.inputs.get("userName") != "pulumi-previewer"}


def test_config_map_modes_hand_aws_auth_to_pulumi_eks_with_ci_group_and_admin(plans):
    cfg = load_stack_config("dev")
    (cluster,) = plans["dev"].of_type("eks:index:Cluster")
    assert cluster.inputs["authenticationMode"] == "API_AND_CONFIG_MAP"
    entries = _map_roles(plans["dev"])
    by_arn = {e["rolearn"]: e for e in entries}
    masters = {arn for arn, e in by_arn.items() if "system:masters" in e["groups"]}
    # pulumi_deployer_cluster_admin: true; aws-auth matches role ARNs without their path
    assert masters == {*cfg.access.admin_role_arns, without_path(deployer("dev"))}
    ci = [e for e in entries if e["username"] == "ci-deployer"]
    assert ci and ci[0]["groups"] == ["eks-platform:ci-deployers"]
    assert ci[0]["rolearn"] == "arn:aws:iam::123456789012:role/eks-platform-dev-ci-deployer", "aws-auth drops the path"
    assert by_arn["arn:aws:iam::111111111111:role/developers"]["groups"] == ["developers"]
    # Managed node groups get EKS-made access entries in this mode: aws-auth carries no node role to lose.
    assert not [e for e in entries if "system:nodes" in e["groups"]]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_aws_auth_has_one_owner_pulumi_eks(plans, env):
    """The program writes no aws-auth of its own (pulumi-eks' ConfigMap, patchForce, would overwrite it on the next
    refresh + up, or the reverse): every writer of kube-system/aws-auth is the eks.Cluster component."""
    writers = [r for r in plans[env].resources if r.type in (AWS_AUTH, "kubernetes:core/v1:ConfigMap")
               and r.inputs.get("metadata", {}).get("name") == "aws-auth"]
    assert writers == []


def test_api_mode_declares_access_entries_and_no_aws_auth(plans):
    plan = plans["prod"]
    cfg = load_stack_config("prod")
    (cluster,) = plan.of_type("eks:index:Cluster")
    assert cluster.inputs["authenticationMode"] == "API"
    assert not plan.of_type(AWS_AUTH)
    entries = _principal_entries(plan)
    ci = [e for e in entries.values() if e.inputs.get("userName") == "ci-deployer"]
    assert ci[0].inputs["kubernetesGroups"] == ["eks-platform:ci-deployers"]
    for entry in entries.values():
        assert not any(g.startswith("system:") for g in entry.inputs.get("kubernetesGroups") or [])
    admins = {a.inputs["principalArn"] for a in plan.of_type(ASSOCIATION) if a.inputs["policyArn"] == ADMIN_POLICY}
    # The creator (platform-admin) got its cluster-admin entry from EKS at CreateCluster: none declared for it.
    assert cfg.access.cluster_creator_arn in cfg.access.admin_role_arns
    assert admins == {*cfg.access.admin_role_arns, deployer("prod")} - {cfg.access.cluster_creator_arn}
    assert cfg.access.cluster_creator_arn not in entries
    for association in plan.of_type(ASSOCIATION):
        assert association.inputs["accessScope"] == {"type": "cluster"}


def test_both_mode_declares_aws_auth_and_access_entries_for_the_same_principals(plans):
    plan = plans["dev"]
    mapped = {e["rolearn"] for e in _map_roles(plan)}
    entries = set(_principal_entries(plan))
    creator = load_stack_config("dev").access.cluster_creator_arn
    assert creator not in entries  # EKS made the creator's entry; aws-auth still maps it
    assert mapped == {without_path(arn) for arn in entries | {creator}}
    assert set(plan.outputs["accessPrincipals"]) == entries | {creator}


def test_config_map_only_mode_has_no_access_entries():
    access = read_stack_file("dev")["eks-platform:access"]
    plan = _variant("dev", {**access, "authentication_mode": "CONFIG_MAP"})
    assert not plan.of_type(ENTRY) and not plan.of_type(ASSOCIATION)
    assert _map_roles(plan)
    (cluster,) = plan.of_type("eks:index:Cluster")
    assert cluster.inputs["authenticationMode"] == "CONFIG_MAP"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_ci_up_as_the_pulumi_deployer_is_cluster_admin_in_both_stacks(plans, env):
    """CI's `invoke up` applies Kubernetes resources (charts, RBAC, namespaces): without admin every one is a 403."""
    assert load_stack_config(env).access.pulumi_deployer_cluster_admin
    assert deployer(env) in {a.inputs["principalArn"] for a in plans[env].of_type(ASSOCIATION)}


def test_pulumi_deployer_is_cluster_admin_only_when_configured():
    access = read_stack_file("prod")["eks-platform:access"]
    for admin in (False, True):
        plan = _variant("prod", {**access, "pulumi_deployer_cluster_admin": admin})
        assert plan.outputs["pulumiDeployerRoleArn"] == deployer("prod")
        assert (deployer("prod") in {a.inputs["principalArn"] for a in plan.of_type(ASSOCIATION)}) is admin


def _statements(plan: Plan):
    """Every permission statement the program grants: role policies, managed policies (not the boundaries, which are
    ceilings), inline policies."""
    managed = [r for r in plan.of_type("aws:iam/policy:Policy")
               if r.inputs["tags"].get("eks-platform:purpose") != "permissions-boundary"]
    documents = [(r.name, r.inputs["policy"]) for r in plan.of_type(ROLE_POLICY) + managed]
    documents += [(r.name, inline["policy"]) for r in plan.of_type(ROLE) for inline in r.inputs.get("inlinePolicies") or []]
    for name, document in documents:
        for statement in json.loads(document)["Statement"]:
            yield name, statement


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_no_iam_statement_allows_a_wildcard_action_on_all_resources(plans, env):
    checked = 0
    for name, statement in _statements(plans[env]):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        checked += 1
        assert statement["Effect"] == "Allow"
        for action in actions:
            assert action != "*", name
            if "*" in resources:
                assert not action.endswith(":*"), f"{name}: {action} on every resource"
        writes = [a for a in actions if a.startswith("iam:") and not a.split(":")[1].startswith(("Get", "List"))]
        if writes and "*" in resources:  # only service-linked roles, and only of the named services
            assert writes == ["iam:CreateServiceLinkedRole"], f"{name}: IAM changes must be scoped to the stack's ARNs"
            assert statement["Condition"]["StringEquals"]["iam:AWSServiceName"]
    assert checked >= 5


def test_ci_deployer_policy_only_describes_its_cluster_and_pushes_images(plans):
    (policy,) = [p for p in plans["prod"].of_type(ROLE_POLICY) if p.name == "access-ci-deployer"]
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert statements["DescribeCluster"]["Resource"] == "arn:aws:eks:eu-west-1:123456789012:cluster/eks-prod"
    assert statements["EcrLogin"]["Action"] == "ecr:GetAuthorizationToken"
    assert all(a.startswith("ecr:") for a in statements["EcrPush"]["Action"])
    assert statements["EcrPush"]["Resource"] == "arn:aws:ecr:eu-west-1:123456789012:repository/eks-platform/prod/*"
    assert not any("secretsmanager" in json.dumps(s) for s in statements.values())


def test_aws_auth_drops_the_iam_path_that_access_entries_keep():
    access = read_stack_file("dev")["eks-platform:access"]
    pathed = "arn:aws:iam::111111111111:role/teams/data/analysts"
    plan = _variant("dev", {**access, "role_mappings": [{"role_arn": pathed, "username": "analyst",
                                                         "groups": ["analysts"]}]})
    assert "arn:aws:iam::111111111111:role/analysts" in {e["rolearn"] for e in _map_roles(plan)}
    assert pathed in _principal_entries(plan)


# Pulumi resource type -> the IAM service prefix its API calls use (where the module name differs).
IAM_SERVICE = {"aws:cloudwatch/logGroup:LogGroup": "logs", "aws:cloudwatch/eventRule:EventRule": "events",
               "aws:cloudwatch/eventTarget:EventTarget": "events"}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_pulumi_deployer_may_call_every_aws_service_the_program_declares(plans, env):
    (policy,) = [p for p in plans[env].of_type(ROLE_POLICY) if p.name == "access-pulumi-deployer"]
    allowed = {action.split(":")[0] for statement in json.loads(policy.inputs["policy"])["Statement"]
               for action in statement["Action"]}
    declared = {IAM_SERVICE.get(r.type, r.type.split(":")[1].split("/")[0])
                for r in plans[env].resources if r.type.startswith("aws:")}
    assert declared - allowed == set()


def test_reordering_admins_and_mappings_keeps_every_access_entry_name():
    access = read_stack_file("dev")["eks-platform:access"]
    extra = {"role_arn": "arn:aws:iam::111111111111:role/auditors", "username": "auditor", "groups": ["auditors"]}
    first = _variant("dev", {**access, "role_mappings": [*access["role_mappings"], extra]})
    second = _variant("dev", {**access, "role_mappings": [extra, *access["role_mappings"]]})
    names = [{e.name: e.inputs["principalArn"] for e in plan.of_type(ENTRY)} for plan in (first, second)]
    assert names[0] == names[1] and len(names[0]) == 5  # ci-deployer, admin, developers, auditors, previewer


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_previewer_reads_only_what_preview_calls_and_trusts_the_preview_environment(plans, env):
    roles = _roles(plans[env])
    trust = json.loads(roles[f"eks-platform-{env}-pulumi-previewer"].inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Condition"] == {"StringEquals": {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": f"repo:acme-platform/eks-platform:environment:preview-{env}"}}
    (policy,) = [p for p in plans[env].of_type(ROLE_POLICY) if p.name == "access-pulumi-previewer"]
    actions = sorted(a for s in json.loads(policy.inputs["policy"])["Statement"] for a in s["Action"])
    assert actions == ["ec2:DescribeAvailabilityZones", "ec2:DescribeRegions", "eks:DescribeAddonVersions",
                       "eks:DescribeCluster", "eks:DescribeClusterVersions"], "an explicit list, no Get* on *"
    assert plans[env].outputs["pulumiPreviewerRoleArn"].endswith(f"/eks-platform-{env}-pulumi-previewer")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_previewer_gets_kubernetes_read_access_through_an_access_entry(plans, env):
    plan = plans[env]
    previewer = plan.outputs["pulumiPreviewerRoleArn"]
    (entry,) = [e for e in plan.of_type(ENTRY) if e.inputs["principalArn"] == previewer]
    assert entry.inputs["userName"] == "pulumi-previewer" and not entry.inputs.get("kubernetesGroups")
    (association,) = [a for a in plan.of_type(ASSOCIATION) if a.inputs["principalArn"] == previewer]
    assert association.inputs["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
    assert association.inputs["accessScope"] == {"type": "cluster"}
