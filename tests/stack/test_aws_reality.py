"""What a first real `pulumi up` meets and the mocks accept silently: EKS's version calendar, add-on order, access
bootstrap, API reach from CI, network policy enforcement, autoscaler-owned sizes, upgrade policy, open endpoints.

Each test fails without its fix; the plan under mocks carries resource options (dependencies, ignore_changes) so
they can be read here (and by the policy pack).
"""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from infra import eks_calendar
from infra.config import ConfigError, from_mapping, load_stack_config, read_stack_file, stack_warnings
from infra.eks_calendar import CALENDAR, Support, UnknownVersion
from infra.plan.offline import Plan, PlannedResource, plan_config
from tests.support import REPO_ROOT
from tests.support.cli import invoke
from tests.support.project import copy_task_files

ADDON = "aws:eks/addon:Addon"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ENTRY = "aws:eks/accessEntry:AccessEntry"
TODAY = date(2026, 12, 5)  # the day the calendar was checked (and tests/conftest.py's EKS_PLATFORM_TODAY)


@pytest.fixture(scope="module")
def plans(stack_plans) -> dict[str, Plan]:
    return stack_plans


def _addons(plan: Plan) -> dict[str, PlannedResource]:
    return {addon.inputs["addonName"]: addon for addon in plan.of_type(ADDON)}


def _set(raw: dict[str, Any], section: str, path: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    node = raw[section]
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return raw


def _issues(raw: dict[str, Any], today: date = TODAY) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        from_mapping("dev", raw, today=today)
    return [str(issue) for issue in caught.value.issues]


# --- the EKS version calendar --------------------------------------------------------------------------------

def test_calendar_says_what_eks_offers_on_the_day_it_was_checked():
    """The issue's facts as of 2026-12-05: 1.31 ended 2026-11-26, 1.32 extended until 2027-03-23, 1.33 extended,
    1.34's standard support ended 2026-12-02, 1.35 and 1.36 in standard support; no AL2 from 1.33."""
    support = {r.version: r.support(TODAY) for r in CALENDAR.releases}
    assert support == {"1.29": Support.ENDED, "1.30": Support.ENDED, "1.31": Support.ENDED,
                       "1.32": Support.EXTENDED, "1.33": Support.EXTENDED, "1.34": Support.EXTENDED,
                       "1.35": Support.STANDARD, "1.36": Support.STANDARD}
    assert CALENDAR.release(31).end_of_extended == date(2026, 11, 26)
    assert CALENDAR.release(32).end_of_extended == date(2027, 3, 23)
    assert CALENDAR.release(34).end_of_standard == date(2026, 12, 2)
    assert [r.version for r in CALENDAR.releases if r.al2] == ["1.29", "1.30", "1.31", "1.32"]
    assert CALENDAR.newest_creatable(TODAY).version == "1.36"
    assert CALENDAR.standard_target(32, TODAY).version == "1.35"


def test_every_row_keeps_ekss_rule_and_estimates_say_so():
    """14 months of standard support then 12 of extended (published rows keep to it within a few days)."""
    for release in CALENDAR.releases:
        standard = eks_calendar.add_months(release.released, 14)
        assert abs((release.end_of_standard - standard).days) <= 3, release.version
        assert release.end_of_extended == eks_calendar.add_months(release.end_of_standard, 12), release.version
        assert "checked 2026-12-05" in release.source
    assert [r.version for r in CALENDAR.releases if r.estimated] == ["1.36"]


def test_a_version_the_calendar_lacks_is_a_clear_error_not_a_key_error():
    with pytest.raises(UnknownVersion, match=r"Kubernetes 1.40 is not in the EKS version calendar.*1.29..1.36"):
        CALENDAR.release(40)


def test_today_is_injectable_and_a_bad_day_is_named(monkeypatch):
    monkeypatch.setenv("EKS_PLATFORM_TODAY", "2027-04-01")
    assert eks_calendar.today() == date(2027, 4, 1)
    monkeypatch.setenv("EKS_PLATFORM_TODAY", "next tuesday")
    with pytest.raises(ConfigError, match="EKS_PLATFORM_TODAY: EKS_PLATFORM_TODAY='next tuesday' is not a date"):
        load_stack_config("dev")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_real_stacks_are_creatable_today_in_standard_support(env, monkeypatch):
    """Judged on the real date on purpose: the day this fails, the stack file needs its version moved (the same
    verdict `invoke plan` gives), not the test."""
    monkeypatch.delenv("EKS_PLATFORM_TODAY")
    cfg = load_stack_config(env)
    assert CALENDAR.release(cfg.version.minor).support(date.today()) is Support.STANDARD
    assert cfg.cluster.upgrade_policy == "STANDARD"


def test_a_version_past_extended_support_is_refused_naming_key_date_and_newest(monkeypatch):
    raw = _set(read_stack_file("dev"), "eks-platform:cluster", "version", "1.31")
    assert _issues(raw) == [
        'eks-platform:cluster.version: Kubernetes 1.31 left EKS extended support on 2026-11-26: EKS creates no cluster '
        'of it and auto-upgrades running ones; set "1.36" (the newest EKS creates on 2026-12-05), or "1.32" where EKS '
        'already upgraded a running cluster']


def test_standard_policy_cannot_hold_a_version_in_extended_support():
    raw = _set(read_stack_file("dev"), "eks-platform:cluster", "version", "1.34")
    raw = _set(raw, "eks-platform:cluster", "addons.kube-proxy", "v1.34.6-eksbuild.2")
    [issue] = _issues(raw)
    assert issue.startswith("eks-platform:cluster.upgrade_policy: STANDARD cannot hold Kubernetes 1.34")
    assert 'set cluster.version to "1.35"' in issue and "upgrade_policy: EXTENDED (+$365/month)" in issue


def test_extended_support_is_warned_with_its_cost_and_the_auto_upgrade_day():
    raw = _set(read_stack_file("dev"), "eks-platform:cluster", "version", "1.34")
    raw = _set(raw, "eks-platform:cluster", "addons.kube-proxy", "v1.34.6-eksbuild.2")
    cfg = from_mapping("dev", _set(raw, "eks-platform:cluster", "upgrade_policy", "EXTENDED"), today=TODAY)
    [warning] = stack_warnings(cfg, TODAY)
    assert warning.startswith("eks-platform:cluster.version 1.34 is in EKS extended support since 2026-12-02")
    assert "about $365/month more per cluster ($0.60 instead of $0.10 per cluster-hour)" in warning
    assert "EKS auto-upgrades the control plane after 2027-12-02 (362 days)" in warning
    assert "invoke cluster.upgrade --env dev --to 1.35 --plan-only" in warning
    assert stack_warnings(load_stack_config("dev"), TODAY) == []  # 1.35, STANDARD: nothing to say yet


def test_extended_upgrade_policy_is_warned_before_standard_support_ends():
    cfg = from_mapping("dev", _set(read_stack_file("dev"), "eks-platform:cluster", "upgrade_policy", "EXTENDED"),
                       today=TODAY)
    [warning] = stack_warnings(cfg, TODAY)
    assert "upgrade_policy EXTENDED" in warning and "2027-03-27" in warning and "$365/month" in warning


def test_upgrade_policy_is_standard_by_default_and_reaches_the_cluster(plans):
    raw = _set(read_stack_file("dev"), "eks-platform:cluster", "upgrade_policy", None)
    assert from_mapping("dev", raw, today=TODAY).cluster.upgrade_policy == "STANDARD"
    for plan in plans.values():
        (cluster,) = plan.of_type("eks:index:Cluster")
        assert cluster.inputs["upgradePolicy"] == {"supportType": "STANDARD"}  # EKS's own default is EXTENDED


def test_al2_at_1_33_is_refused_from_the_calendars_al2_column():
    raw = _set(read_stack_file("dev"), "eks-platform:cluster", "version", "1.33")
    raw = _set(raw, "eks-platform:cluster", "upgrade_policy", "EXTENDED")
    raw = _set(raw, "eks-platform:cluster", "addons.kube-proxy", "v1.33.10-eksbuild.2")
    [issue] = _issues(_set(raw, "eks-platform:node_pools", "general.generations.blue.ami_type", "AL2_x86_64"))
    assert issue.startswith("eks-platform:node_pools.general.generations.blue.ami_type: AL2_x86_64 has no AMIs "
                            "for Kubernetes 1.33")


def test_add_on_pins_and_autoscaler_images_follow_the_calendar(monkeypatch):
    from infra import charts

    assert set(charts.AUTOSCALER_IMAGES) == set(CALENDAR.minors)
    assert all(tag.startswith(f"v1.{minor}.") for minor, tag in charts.AUTOSCALER_IMAGES.items())
    for env in ("dev", "prod"):
        cfg = load_stack_config(env)
        assert cfg.cluster.addons["kube-proxy"].startswith(f"v{cfg.cluster.version}.")
    monkeypatch.delitem(charts.AUTOSCALER_IMAGES, 35)
    [issue] = _issues(read_stack_file("dev"))
    assert issue.startswith("eks-platform:cluster.version: infra/charts.py AUTOSCALER_IMAGES pins no "
                            "cluster-autoscaler image for 1.35")


# --- add-ons: order, owners, network policy -------------------------------------------------------------------

@pytest.mark.parametrize("env", ["dev", "prod"])
def test_pulumi_eks_creates_no_addon_of_its_own(plans, env):
    """pulumi-eks' CoreDNS (enabled unless said otherwise) sits inside its component, which the node groups wait for:
    CoreDNS waits for nodes that wait for CoreDNS (pulumi-eks #1819, #1525)."""
    (cluster,) = plans[env].of_type("eks:index:Cluster")
    assert cluster.inputs["corednsAddonOptions"]["enabled"] is False
    assert cluster.inputs["kubeProxyAddonOptions"]["enabled"] is False
    assert cluster.inputs["useDefaultVpcCni"] is True  # pulumi-eks' switch for "no VpcCniAddon"
    assert "vpcCniOptions" not in cluster.inputs
    assert cluster.inputs["bootstrapSelfManagedAddons"] is False  # no self-managed copies: one owner each


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_coredns_and_ebs_csi_wait_for_every_node_group(plans, env):
    plan = plans[env]
    groups = {group.urn for group in plan.of_type(NODE_GROUP)}
    addons = _addons(plan)
    assert sorted(addons) == ["aws-ebs-csi-driver", "coredns", "kube-proxy", "vpc-cni"]
    for name in ("coredns", "aws-ebs-csi-driver"):
        assert groups <= set(addons[name].dependencies), f"{name} must wait for the nodes that run its pods"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_node_groups_wait_for_the_cni_and_kube_proxy(plans, env):
    plan = plans[env]
    addons = _addons(plan)
    for group in plan.of_type(NODE_GROUP):
        waited = {r.urn for r in plan.waits_for(group)}
        assert {addons["vpc-cni"].urn, addons["kube-proxy"].urn} <= waited, group.name
        assert addons["coredns"].urn not in waited


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_in_cluster_releases_wait_for_cluster_dns(plans, env):
    """Helm releases wait (atomic) for pods that resolve names: CoreDNS must be ACTIVE before they start."""
    plan = plans[env]
    coredns = _addons(plan)["coredns"].urn
    releases = plan.of_type("kubernetes:helm.sh/v3:Release")
    assert releases and all(coredns in {r.urn for r in plan.waits_for(release)} for release in releases)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_addons_adopt_self_managed_copies_and_outlive_their_resource(plans, env):
    for addon in plans[env].of_type(ADDON):
        assert addon.inputs["resolveConflictsOnCreate"] == "OVERWRITE", addon.name
        assert addon.inputs["resolveConflictsOnUpdate"] == "OVERWRITE", addon.name
        assert addon.inputs["preserve"] is True, addon.name


def _declared_network_policies(plan: Plan) -> bool:
    from infra.ops.io.manifests import K8S_ROOT

    in_manifests = any("kind: NetworkPolicy" in path.read_text() for path in K8S_ROOT.rglob("*.yaml"))
    return in_manifests or bool(plan.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy"))


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_vpc_cni_enforces_the_network_policies_the_platform_declares(plans, env):
    """Without the CNI's network policy agent EKS stores every NetworkPolicy and enforces none of them."""
    plan = plans[env]
    assert _declared_network_policies(plan)
    vpc_cni = _addons(plan)["vpc-cni"]
    assert json.loads(vpc_cni.inputs["configurationValues"])["enableNetworkPolicy"] == "true"


# --- node groups and the autoscaler ---------------------------------------------------------------------------

@pytest.mark.parametrize("env", ["dev", "prod"])
def test_up_leaves_desired_size_to_the_cluster_autoscaler(plans, env):
    groups = plans[env].of_type(NODE_GROUP)
    assert groups and all(group.ignore_changes == ["scalingConfig.desiredSize"] for group in groups)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_node_groups_wait_for_their_roles_policies(plans, env):
    """Nodes launched before the node role has its policies cannot join (NodeCreationFailure after ~20 minutes)."""
    plan = plans[env]
    attachments = {a.inputs["role"]: [] for a in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")}
    for attachment in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        attachments[attachment.inputs["role"]].append(attachment.urn)
    for group in plan.of_type(NODE_GROUP):
        role = group.inputs["nodeRoleArn"].rsplit("/", 1)[-1]
        assert len(attachments[role]) == 4 and set(attachments[role]) <= set(group.dependencies), group.name
    (ebs_policy,) = [a for a in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                     if a.inputs["policyArn"].endswith("AmazonEBSCSIDriverPolicy")]
    assert ebs_policy.urn in _addons(plan)["aws-ebs-csi-driver"].dependencies


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_launch_templates_tag_volumes_and_interfaces_too(plans, env):
    templates = [t for t in plans[env].of_type("aws:ec2/launchTemplate:LaunchTemplate") if "NodeGroups" in t.parent]
    assert templates
    for template in templates:
        kinds = {spec["resourceType"] for spec in template.inputs["tagSpecifications"]}
        assert kinds == {"instance", "volume", "network-interface"}, template.name


def test_a_pool_migrating_instance_family_keeps_types_per_generation(plans):
    types = {g.inputs["labels"]["generation"]: g.inputs["instanceTypes"] for g in plans["dev"].of_type(NODE_GROUP)}
    assert types == {"blue": ["t3.large"], "green": ["t3a.large"]}


def test_no_pool_that_can_run_coredns_is_the_deadlock_refused_in_one_line():
    raw = read_stack_file("dev")
    tainted = _set(raw, "eks-platform:node_pools", "general.taints", [{"key": "dedicated", "value": "batch",
                                                                       "effect": "NO_SCHEDULE"}])
    [issue] = _issues(tainted)
    assert issue.startswith("eks-platform:node_pools: no pool can run CoreDNS and the EBS CSI controller")
    empty = _set(_set(raw, "eks-platform:node_pools", "general.min_size", 0), "eks-platform:node_pools",
                 "general.desired_size", 0)
    assert _issues(empty) == [issue]
    load_stack_config("prod")  # prod's system pool is tainted CriticalAddonsOnly, which the add-ons tolerate


# --- the API endpoint --------------------------------------------------------------------------------------------

def test_an_endpoint_open_to_the_internet_needs_the_explicit_key():
    raw = read_stack_file("dev")
    assert load_stack_config("dev").cluster.public_endpoint_open_to_internet  # dev says so, on purpose
    [issue] = _issues(_set(raw, "eks-platform:cluster", "public_endpoint_open_to_internet", None))
    assert issue.startswith("eks-platform:cluster.public_access_cidrs: 0.0.0.0/0 opens the API endpoint")
    allow_listed = _set(raw, "eks-platform:cluster", "public_access_cidrs", ["198.51.100.0/24"])
    [issue] = _issues(allow_listed)
    assert issue.startswith("eks-platform:cluster.public_endpoint_open_to_internet: is true but")
    ok = from_mapping("dev", _set(allow_listed, "eks-platform:cluster", "public_endpoint_open_to_internet", None),
                      today=TODAY)
    assert not ok.cluster.reachable_from_anywhere


def test_the_cluster_tells_the_policy_pack_its_waivers_and_its_creator(plans):
    """clusterTags carry what the pack's rules read: a waiver only for what a key chose on purpose (dev's open
    endpoint; an EXTENDED upgrade policy), and the creator whose access entry EKS made."""
    waiver, creator = "eks-platform:policy-waiver", "eks-platform:cluster-creator"
    tags = {env: plans[env].of_type("eks:index:Cluster")[0].inputs["clusterTags"] for env in ("dev", "prod")}
    assert tags["dev"] == {waiver: "eks-endpoint-not-world", creator: load_stack_config("dev").access.cluster_creator_arn}
    assert tags["prod"] == {creator: load_stack_config("prod").access.cluster_creator_arn}
    raw = _set(read_stack_file("prod"), "eks-platform:cluster", "upgrade_policy", "EXTENDED")
    (cluster,) = plan_config(from_mapping("prod", raw, today=TODAY), raw).of_type("eks:index:Cluster")
    assert cluster.inputs["clusterTags"][waiver] == "eks-upgrade-policy-standard"


# --- access at bootstrap ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_creator_gets_no_second_access_entry(plans, env):
    """EKS gave the creator a cluster-admin entry at CreateCluster (pulumi-eks sets
    bootstrapClusterCreatorAdminPermissions); declaring another for the same principal fails with 409."""
    creator = load_stack_config(env).access.cluster_creator_arn
    assert creator
    assert creator not in {entry.inputs["principalArn"] for entry in plans[env].of_type(ENTRY)}


def test_a_principal_listed_twice_or_already_made_by_the_program_is_refused():
    raw = read_stack_file("dev")
    admin = "arn:aws:iam::111111111111:role/platform-admin"
    [issue] = _issues(_set(raw, "eks-platform:access", "admin_role_arns", [admin, admin]))
    assert issue.startswith("eks-platform:access.admin_role_arns[1]: ") and "listed twice" in issue and "409" in issue
    deployer = "arn:aws:iam::111111111111:role/eks-platform-dev-pulumi-deployer"
    [issue] = _issues(_set(raw, "eks-platform:access", "admin_role_arns", [admin, deployer]))
    assert "is the pulumi-deployer role this stack creates" in issue and "pulumi_deployer_cluster_admin" in issue


@pytest.mark.parametrize("caller, problem", [
    ("arn:aws:sts::111111111111:assumed-role/platform-admin/alice", None),
    ("arn:aws:sts::111111111111:assumed-role/eks-platform-dev-pulumi-deployer/gha", "runs the first `pulumi up`"),
    ("arn:aws:sts::111111111111:assumed-role/developers/bob", "the configured creator would get no access entry"),
])
def test_first_up_runs_as_the_configured_creator(caller, problem):
    from infra.ops.creator import first_up_problem

    found = first_up_problem(load_stack_config("dev"), caller)
    assert (found is None) if problem is None else (problem in found)


def test_first_up_by_the_deployer_role_works_when_the_stack_says_so():
    from infra.ops.creator import first_up_problem

    raw = read_stack_file("dev")
    deployer = "arn:aws:iam::111111111111:role/eks-platform-dev-pulumi-deployer"
    unsaid = from_mapping("dev", _set(raw, "eks-platform:access", "cluster_creator_arn", None), today=TODAY)
    ci = "arn:aws:sts::111111111111:assumed-role/eks-platform-dev-pulumi-deployer/gha"
    assert "set eks-platform:access.cluster_creator_arn" in first_up_problem(unsaid, ci)
    said = from_mapping("dev", _set(raw, "eks-platform:access", "cluster_creator_arn", deployer), today=TODAY)
    assert first_up_problem(said, ci) is None
    plan = plan_config(said)
    entries = {entry.name for entry in plan.of_type(ENTRY)}
    assert "access-pulumi-deployer" not in entries and any(n.startswith("access-admin-platform-admin") for n in entries)


def test_up_asks_sts_who_creates_the_cluster(aws):
    from infra.ops.creator import WrongCreator, caller_arn, check_first_up, role_of

    caller = caller_arn("eu-west-1")  # moto answers as its own user: not the stack's creator
    with pytest.raises(WrongCreator, match="access.cluster_creator_arn says .*platform-admin runs the first"):
        check_first_up(load_stack_config("dev"), caller)
    assert role_of("arn:aws:sts::111111111111:assumed-role/platform-admin/alice") == role_of(
        "arn:aws:iam::111111111111:role/admins/platform-admin") == ("111111111111", "platform-admin")
    assert role_of(caller) is None  # an IAM user is no role: never the configured creator


# --- CI reaches the API ---------------------------------------------------------------------------------------

def _workflows_copy(tmp_path: Path) -> Path:
    for name in ("Pulumi.dev.yaml", "Pulumi.prod.yaml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / ".github", tmp_path / ".github")
    return tmp_path


def _reach(root: Path) -> list[str]:
    from infra.lint import workflows

    return sorted(f"{f.file} {f.problem}" for f in workflows.rules(workflows.Sources.of(root))
                  if f.rule == "api-reach")


def test_every_job_acting_on_a_stack_runs_where_its_api_answers(tmp_path):
    root = _workflows_copy(tmp_path)
    assert _reach(root) == []
    infra = root / ".github/workflows/infra.yml"
    infra.write_text(infra.read_text().replace("runs-on: [self-hosted, eks-prod] # in prod's VPC",
                                               "runs-on: ubuntu-24.04 # in prod's VPC"))
    [finding] = _reach(root)
    assert finding.startswith(".github/workflows/infra.yml acts on prod from a runner labelled ubuntu-24.04, but "
                              "prod's API endpoint is private")


def test_a_private_endpoint_without_runner_labels_is_refused(tmp_path):
    root = _workflows_copy(tmp_path)
    prod = root / "Pulumi.prod.yaml"
    prod.write_text(prod.read_text().replace("    ci_runner_labels: [self-hosted, eks-prod]\n", ""))
    found = _reach(root)
    assert found and all("names no runner that reaches it" in line for line in found)
    assert {line.split()[0] for line in found} == {".github/workflows/infra.yml", ".github/workflows/cd.yml"}


def test_the_in_vpc_runner_is_admitted_to_the_private_endpoint(plans):
    """EKS' security groups admit only the cluster's nodes: a runner elsewhere in the VPC times out on 443."""
    cfg = load_stack_config("prod")
    (rule,) = plans["prod"].of_type("aws:ec2/securityGroupRule:SecurityGroupRule")
    (cluster,) = plans["prod"].of_type("eks:index:Cluster")
    assert (rule.inputs["type"], rule.inputs["fromPort"], rule.inputs["toPort"]) == ("ingress", 443, 443)
    assert rule.inputs["cidrBlocks"] == [str(c) for c in cfg.cluster.private_access_cidrs]
    assert rule.inputs["securityGroupId"].startswith("sg-") and cluster.urn in rule.dependencies
    raw = _set(read_stack_file("prod"), "eks-platform:cluster", "private_access_cidrs", None)
    with pytest.raises(ConfigError) as caught:
        from_mapping("prod", raw, today=TODAY)
    assert [i.key for i in caught.value.issues] == ["eks-platform:cluster.private_access_cidrs"]
    assert not plans["dev"].of_type("aws:ec2/securityGroupRule:SecurityGroupRule")


# --- the task and the plan as a user runs them --------------------------------------------------------------

def _invoke(root: Path, *args: str) -> subprocess.CompletedProcess:
    return invoke(*args, cwd=root, env={"COLUMNS": "200"})


@pytest.mark.parametrize("edit, line", [
    (('version: "1.35"', 'version: "1.31"'),
     "error: Pulumi.dev.yaml: eks-platform:cluster.version: Kubernetes 1.31 left EKS extended support on 2026-11-26"),
    (("ami_type: AL2023_x86_64_STANDARD\n        green:", "ami_type: AL2_x86_64\n        green:"),
     "error: Pulumi.dev.yaml: eks-platform:node_pools.general.generations.blue.ami_type: AL2_x86_64 has no AMIs"),
    (("      max_unavailable: 1\n", "      max_unavailable: 1\n      taints: [{key: dedicated, effect: NO_SCHEDULE}]\n"),
     "error: Pulumi.dev.yaml: eks-platform:node_pools: no pool can run CoreDNS"),
], ids=["version-1.31", "al2-at-1.35", "coredns-deadlock"])
def test_plan_refuses_a_stack_edited_back_to_what_eks_refuses_in_one_line(tmp_path, edit, line):
    root = copy_task_files(tmp_path)
    stack = root / "Pulumi.dev.yaml"
    assert stack.read_text().count(edit[0]) == 1
    stack.write_text(stack.read_text().replace(*edit))
    result = _invoke(root, "plan", "--env", "dev")
    assert result.returncode == 2 and result.stderr.splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(line)


def test_plan_warns_about_extended_support_and_still_plans(tmp_path):
    root = copy_task_files(tmp_path)
    stack = root / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace('version: "1.35"', 'version: "1.34"').replace(
        "upgrade_policy: STANDARD", "upgrade_policy: EXTENDED").replace("v1.35.3-eksbuild.13", "v1.34.6-eksbuild.2"))
    result = _invoke(root, "plan", "--env", "dev")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("warning: eks-platform:cluster.version 1.34 is in EKS extended support")
    assert "$365/month" in result.stderr and "after 2027-12-02" in result.stderr


def test_plan_json_carries_dependencies_and_ignored_changes(plans):
    body = plans["dev"].to_json()
    groups = [r for r in body["resources"] if r["type"] == NODE_GROUP]
    assert all(r["ignore_changes"] == ["scalingConfig.desiredSize"] and r["dependencies"] for r in groups)
    (coredns,) = [r for r in body["resources"] if r["type"] == ADDON and r["inputs"]["addonName"] == "coredns"]
    assert {g["urn"] for g in groups} <= set(coredns["dependencies"])


# --- invoke cluster.versions ------------------------------------------------------------------------------------

def _stubbed_eks(monkeypatch, response: dict | None, error: str | None = None):
    import boto3
    from botocore.stub import Stubber

    from infra.ops.io import aws

    client = boto3.client("eks", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    params = {"clusterType": "eks", "includeAll": True}
    if error:
        stub.add_client_error("describe_cluster_versions", service_error_code=error, http_status_code=403,
                              expected_params=params)
    else:
        stub.add_response("describe_cluster_versions", response, params)
    stub.activate()
    monkeypatch.setattr(aws, "client", lambda service, region, session=None: client)
    return stub


PACIFIC = timezone(timedelta(hours=-7))  # EKS answers in the caller's zone, as in the user guide's example
EKS_ANSWER = {"clusterVersions": [
    {"clusterVersion": "1.36", "releaseDate": datetime(2026, 6, 1, 17, tzinfo=PACIFIC),
     "endOfStandardSupportDate": datetime(2027, 8, 1, 17, tzinfo=PACIFIC),
     "endOfExtendedSupportDate": datetime(2028, 8, 1, 17, tzinfo=PACIFIC), "status": "STANDARD_SUPPORT"},
    {"clusterVersion": "1.37", "releaseDate": datetime(2026, 11, 30, 17, tzinfo=PACIFIC), "status": "STANDARD_SUPPORT"},
]}


def test_versions_refresh_reads_eks_and_shows_where_the_table_differs(monkeypatch, capsys):
    from invoke import Context

    from infra.cli.cluster import cluster_versions

    stub = _stubbed_eks(monkeypatch, EKS_ANSWER)
    cluster_versions(Context(), refresh=True, env="dev")
    stub.assert_no_pending_responses()
    out = capsys.readouterr().out
    assert "1.37 is on EKS but not in the table (released 2026-12-01)" in out
    assert "1.36" in out and "differs from infra/eks_calendar.py: 1.36" not in out  # UTC days: the same dates
    assert "$0.60 in extended support: about $365 more per cluster and month" in out


def test_versions_refresh_fails_in_one_line(monkeypatch):
    from invoke import Context
    from invoke.exceptions import Exit

    from infra.cli.cluster import cluster_versions

    _stubbed_eks(monkeypatch, None, error="AccessDeniedException")
    with pytest.raises(Exit) as failed:
        cluster_versions(Context(), refresh=True, env="dev")
    assert failed.value.code == 1
    [line] = str(failed.value.message).splitlines()
    assert line.startswith("error: describe_cluster_versions failed: ") and "AccessDeniedException" in line


def test_versions_prints_the_calendar_offline():
    result = _invoke(REPO_ROOT, "cluster.versions")
    assert result.returncode == 0, result.stderr
    assert "1.31" in result.stdout and "ended" in result.stdout and "standard support (112 days left)" in result.stdout
