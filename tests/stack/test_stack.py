"""The Pulumi program under mocks, for both real stack files: what it declares and how."""
from __future__ import annotations

import pytest

from infra.config import load_stack_config
from infra.identity import BASE_REPOSITORY, repository_name
from infra.ops.io.manifests import K8S_ROOT, services
from infra.plan.offline import SECRET, Plan, plan_config, plan_stack
from tests.support import REPO_ROOT

ROOT = REPO_ROOT
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
SUBNET = "aws:ec2/subnet:Subnet"


@pytest.fixture(scope="module", params=["dev", "prod"])
def stack(request) -> tuple[str, Plan]:
    return request.param, plan_stack(request.param)


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    return {env: plan_stack(env) for env in ("dev", "prod")}


def _subnet_azs(plan: Plan) -> dict[str, str]:
    """Mock subnet id -> AZ, recovered from the subnet resources' own inputs."""
    ids = {}
    for az, pair in plan.outputs["subnetIds"].items():
        ids[pair["private"]] = az
        ids[pair["public"]] = az
    return ids


def test_each_node_group_uses_subnets_of_exactly_one_az(stack):
    env, plan = stack
    cfg = load_stack_config(env)
    azs = _subnet_azs(plan)
    groups = plan.of_type(NODE_GROUP)
    assert groups
    for group in groups:
        subnet_azs = {azs[subnet] for subnet in group.inputs["subnetIds"]}
        assert subnet_azs == {group.inputs["tags"]["availability-zone"]}, group.name
        private = plan.outputs["subnetIds"][next(iter(subnet_azs))]["private"]
        assert group.inputs["subnetIds"] == [private]
    expected = sum(len(cfg.pool_azs(pool)) * len(pool.generations) for pool in cfg.node_pools.values())
    assert len(groups) == expected


def test_every_generation_is_declared_in_every_az(stack):
    env, plan = stack
    cfg = load_stack_config(env)
    declared = {(g.inputs["labels"]["pool"], g.inputs["labels"]["generation"], g.inputs["tags"]["availability-zone"],
                 g.inputs["amiType"]) for g in plan.of_type(NODE_GROUP)}
    for pool_name, pool in cfg.node_pools.items():
        for gen_name, gen in pool.generations.items():
            for az in cfg.pool_azs(pool):
                assert (pool_name, gen_name, az, gen.ami_type) in declared
    assert plan.outputs["nodeGroups"]["general"]


def test_node_groups_follow_pool_settings(stack):
    env, plan = stack
    cfg = load_stack_config(env)
    for group in plan.of_type(NODE_GROUP):
        pool = cfg.node_pools[group.inputs["labels"]["pool"]]
        generation = pool.generations[group.inputs["labels"]["generation"]]
        assert group.inputs["scalingConfig"] == {"minSize": pool.min_size, "desiredSize": pool.desired_size,
                                                 "maxSize": pool.max_size}
        assert group.inputs["updateConfig"]["maxUnavailable"] == pool.max_unavailable
        assert group.inputs["instanceTypes"] == (generation.instance_types or pool.instance_types)
        assert group.inputs["version"] == cfg.cluster.version
        assert group.inputs["launchTemplate"]["id"]


def test_launch_templates_require_imdsv2_and_encrypt_root(stack):
    _, plan = stack
    templates = plan.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert templates
    for template in templates:
        metadata = template.inputs["metadataOptions"]
        assert metadata["httpTokens"] == "required"
        assert metadata["httpPutResponseHopLimit"] == 1
        ebs = template.inputs["blockDeviceMappings"][0]["ebs"]
        assert ebs["encrypted"] == "true" and ebs["volumeType"] == "gp3"


def test_cluster_encrypts_secrets_with_rotating_kms_key(stack):
    _, plan = stack
    (cluster,) = plan.of_type("eks:index:Cluster")
    (key,) = [key for key in plan.of_type("aws:kms/key:Key") if key.name == "cluster-secrets"]
    assert key.inputs["enableKeyRotation"] is True
    assert cluster.inputs["encryptionConfigKeyArn"].startswith("arn:aws:kms:")
    assert cluster.inputs["skipDefaultNodeGroup"] is True
    assert cluster.inputs["createOidcProvider"] is True


def test_cluster_gets_version_logging_and_addons_from_config(stack):
    env, plan = stack
    cfg = load_stack_config(env)
    (cluster,) = plan.of_type("eks:index:Cluster")
    assert cluster.inputs["version"] == cfg.cluster.version
    assert cluster.inputs["enabledClusterLogTypes"] == list(cfg.cluster.log_types)
    addons = {addon.inputs["addonName"]: addon for addon in plan.of_type("aws:eks/addon:Addon")}
    assert sorted(addons) == sorted(cfg.cluster.addons)
    for name, addon in addons.items():
        assert addon.inputs["addonVersion"] == cfg.cluster.addons[name]
        assert addon.inputs["clusterName"] == cfg.cluster.name
    assert addons["aws-ebs-csi-driver"].inputs["serviceAccountRoleArn"].startswith("arn:aws:iam::")
    (logs,) = [group for group in plan.of_type("aws:cloudwatch/logGroup:LogGroup") if group.name == "cluster-logs"]
    assert logs.inputs["retentionInDays"] == cfg.cluster.log_retention_days


def test_subnets_are_tagged_for_load_balancers(stack):
    _, plan = stack
    for subnet in plan.of_type(SUBNET):
        if subnet.inputs["tags"]["tier"] == "nat-probe":  # NAT probe /28s: no load balancers there
            assert not any(key.startswith("kubernetes.io/role/") for key in subnet.inputs["tags"])
            continue
        role = "kubernetes.io/role/elb" if subnet.inputs["tags"]["tier"] == "public" else "kubernetes.io/role/internal-elb"
        assert subnet.inputs["tags"][role] == "1"
    tables = [t for t in plan.of_type("aws:ec2/routeTable:RouteTable") if t.inputs["tags"].get("tier") == "private"]
    assert sorted(t.inputs["tags"]["az"] for t in tables) == sorted(plan.outputs["privateRouteTableIds"])


def test_outputs_are_complete_and_kubeconfig_is_secret(stack):
    env, plan = stack
    outputs = plan.outputs
    for key in ("clusterName", "endpoint", "kubeconfig", "oidcProviderArn", "nodeGroups", "vpcId", "subnetIds",
                "privateRouteTableIds"):
        assert key in outputs, key
    assert outputs["kubeconfig"] == SECRET
    assert outputs["endpoint"].startswith("https://")
    assert set(outputs["subnetIds"]) == set(load_stack_config(env).network.azs)


def test_prod_differs_from_dev_where_intended(plans):
    dev, prod = plans["dev"], plans["prod"]
    (dev_cluster,), (prod_cluster,) = dev.of_type("eks:index:Cluster"), prod.of_type("eks:index:Cluster")
    assert dev_cluster.inputs["endpointPublicAccess"] is True
    assert prod_cluster.inputs["endpointPublicAccess"] is False
    assert prod_cluster.protect and not dev_cluster.protect
    assert prod_cluster.inputs["deletionProtection"] is True
    workload_subnets = [[s for s in plan.of_type(SUBNET) if s.inputs["tags"]["tier"] != "nat-probe"] for plan in (prod, dev)]
    assert [len(subnets) for subnets in workload_subnets] == [6, 4]
    dev_types = {t for g in dev.of_type(NODE_GROUP) for t in g.inputs["instanceTypes"]}
    prod_types = {t for g in prod.of_type(NODE_GROUP) for t in g.inputs["instanceTypes"]}
    assert dev_types.isdisjoint(prod_types)


def test_adding_a_generation_adds_groups_without_touching_existing_ones():
    cfg = load_stack_config("prod")
    pool = cfg.node_pools["general"]
    green = pool.generations["blue"].model_copy(update={"ami_type": "AL2023_x86_64_STANDARD"})
    migrated = cfg.model_copy(update={"node_pools": {**cfg.node_pools, "general": pool.model_copy(
        update={"generations": {**pool.generations, "green": green}})}})
    before, after = plan_stack("prod"), plan_config(migrated)
    before_groups = {g.name: g.inputs for g in before.of_type(NODE_GROUP)}
    after_groups = {g.name: g.inputs for g in after.of_type(NODE_GROUP)}
    assert set(after_groups) - set(before_groups) == {f"nodes-general-green-{s}" for s in "abc"}
    for name, inputs in before_groups.items():
        assert after_groups[name] == inputs


def _run_main(env: str, config: dict) -> Plan:
    """Run __main__.py the way the Pulumi engine does: config arrives as the PULUMI_CONFIG JSON bag."""
    import contextvars
    import json
    import os
    import runpy
    from unittest import mock

    import pulumi
    from pulumi.runtime import settings
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from infra.plan.offline import PlanMocks, RecordingMonitor

    plan = Plan(env=env)
    bag = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}

    def run() -> None:
        settings.ROOT.set(None)
        mocks = PlanMocks("eu-west-1")
        pulumi.runtime.set_mocks(mocks, project="eks-platform", stack=env, preview=True,
                                 monitor=RecordingMonitor(mocks, plan))
        with mock.patch.dict(os.environ, {"PULUMI_CONFIG": json.dumps(bag)}):
            _sync_await(run_pulumi_func(lambda: runpy.run_path(str(ROOT / "__main__.py"))))

    contextvars.Context().run(run)
    return plan


def test_main_reads_config_from_the_engine_and_builds_the_stack():
    from infra.config import read_stack_file

    plan = _run_main("prod", read_stack_file("prod"))
    assert len(plan.of_type(NODE_GROUP)) == 6
    (cluster,) = plan.of_type("eks:index:Cluster")
    assert cluster.inputs["name"] == "eks-prod"


def test_main_stops_on_bad_config_with_the_config_error():
    import pulumi

    from infra.config import read_stack_file

    raw = read_stack_file("dev")
    raw["eks-platform:cluster"] = {**raw["eks-platform:cluster"], "version": "1.99"}
    with pytest.raises(pulumi.RunError, match=r"eks-platform:cluster.version: Kubernetes 1.99 is outside"):
        _run_main("dev", raw)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_registry_holds_every_service_and_the_shared_base_under_the_names_deploy_uses(stack_plans, env):
    """`invoke deploy` pushes services/base first, then the service FROM it: both repositories must exist, under
    the stack-prefixed names deploy derives (infra.identity.repository_name)."""
    plan = stack_plans[env]
    names = {r.inputs["name"] for r in plan.of_type("aws:ecr/repository:Repository")}
    wanted = [*services(K8S_ROOT), BASE_REPOSITORY]
    assert names == {repository_name(env, name) for name in wanted}
    assert set(plan.outputs["ecrRepositories"]) == set(wanted)
    lifecycles = plan.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert len(lifecycles) == len(wanted)
