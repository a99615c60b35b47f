"""The NAT component under Pulumi mocks: routes, instances, IAM scoping, alarms, event rules, modes, config errors."""
from __future__ import annotations

import base64
import json

import pytest

from infra.components.nat import FAILING_STATES, lambda_code, route_homes
from infra.config import ConfigError, from_mapping, load_stack_config, read_stack_file
from infra.lambdas.nat.health import AZ_TAG, HEALTH_TAG, STACK_TAG
from infra.plan.offline import plan_config


@pytest.fixture
def plans(stack_plans):
    """The session's plans of both real stack files (tests/conftest.py), shared with other plan tests."""
    return stack_plans


def one(plan, type_, name):
    found = [r for r in plan.of_type(type_) if r.name == name]
    assert len(found) == 1, f"{type_} {name}: {len(found)}"
    return found[0]


def ids(plan, type_):
    """Mock IDs are `<name>-<digest>`: resource name -> the ID other inputs reference."""
    return {r.name: r for r in plan.of_type(type_)}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_private_table_gets_one_default_route_to_its_home_instance(plans, env):
    plan, cfg = plans[env], load_stack_config(env)
    tables = plan.outputs["natRouteTableIds"]
    homes = route_homes(cfg)
    enis = {az: f"eni-{plan.outputs['natInstanceIds'][az].rsplit('-', 1)[1]}" for az in plan.outputs["natInstanceIds"]}
    routes = {r.inputs["routeTableId"]: r.inputs for r in plan.of_type("aws:ec2/route:Route")
              if r.name.startswith("nat-default-")}
    assert sorted(routes) == sorted(tables.values())
    for az, table in tables.items():
        assert routes[table]["destinationCidrBlock"] == "0.0.0.0/0"
        assert routes[table]["networkInterfaceId"] == enis[homes[az]]
    assert plan.outputs["natRouteHomes"] == homes
    if env == "prod":
        assert homes == {"eu-west-1a": "eu-west-1a", "eu-west-1b": "eu-west-1b", "eu-west-1c": "eu-west-1a"}


def test_instances_are_hardened_nat_boxes(plans):
    plan, cfg = plans["prod"], load_stack_config("prod")
    instances = plan.of_type("aws:ec2/instance:Instance")
    assert sorted(i.name for i in instances) == ["nat-a", "nat-b"]
    for instance in instances:
        assert instance.inputs["sourceDestCheck"] is False
        assert "keyName" not in instance.inputs
        assert instance.inputs["tags"][STACK_TAG] == "eks-prod" and instance.inputs["tags"][AZ_TAG].startswith("eu-west-1")
    template = one(plan, "aws:ec2/launchTemplate:LaunchTemplate", "nat-instance").inputs
    assert template["imageId"] == "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
    assert template["instanceType"] == "t4g.small"
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1
    script = base64.b64decode(template["userData"]).decode()
    assert f"-s {cfg.network.cidr} -j MASQUERADE" in script and "net.ipv4.ip_forward = 1" in script
    assert "systemctl disable --now sshd" in script
    group = one(plan, "aws:ec2/securityGroup:SecurityGroup", "nat-instances").inputs
    assert [rule["cidrBlocks"] for rule in group["ingress"]] == [[str(cfg.network.cidr)]]
    assert len(plan.of_type("aws:ec2/eip:Eip")) >= 2
    ssm = [r for r in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if r.name == "nat-instance-ssm"]
    assert ssm[0].inputs["policyArn"].endswith("AmazonSSMManagedInstanceCore")


def _policy(plan):
    return json.loads(one(plan, "aws:iam/rolePolicy:RolePolicy", "nat-failover").inputs["policy"])


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_failover_iam_is_scoped(plans, env):
    plan = plans[env]
    statements = _policy(plan)["Statement"]
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert "*" not in actions and not any(action.endswith(":*") for action in actions)
        if statement["Resource"] == "*":
            assert all(action.startswith("ec2:Describe") for action in actions) or statement.get("Condition")
    by_sid = {statement["Sid"]: statement for statement in statements}
    tables = plan.outputs["natRouteTableIds"].values()
    assert by_sid["MoveDefaultRoutes"]["Resource"] == sorted(
        f"arn:aws:ec2:eu-west-1:123456789012:route-table/{table}" for table in tables)
    assert by_sid["HealthTag"]["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"] == [HEALTH_TAG]
    assert by_sid["Metrics"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "EksPlatform/NAT"}}
    assert by_sid["Notify"]["Resource"] == plan.outputs["natTopicArn"]
    assert len(by_sid["Probe"]["Resource"]) == 2


def test_failover_function_configuration(plans):
    plan = plans["prod"]
    function = one(plan, "aws:lambda/function:Function", "nat-failover").inputs
    assert function["handler"] == "infra/lambdas/nat/failover.handler" and function["timeout"] == 63
    env = function["environment"]["variables"]
    tables = plan.outputs["natRouteTableIds"]
    assert json.loads(env["NAT_ROUTE_TABLES"]) == {tables[az]: home for az, home in route_homes(
        load_stack_config("prod")).items()}
    assert set(json.loads(env["NAT_PROBE_FUNCTIONS"])) == {"eu-west-1a", "eu-west-1b"}
    assert (env["NAT_FAILBACK_CHECKS"], env["NAT_FAILBACK_MIN_SECONDS"]) == ("60", "300")
    assert "vpcConfig" not in function  # outside the VPC: its AWS calls never depend on the NAT it judges
    archive = lambda_code().assets
    assert {"infra/__init__.py", "infra/lambdas/nat/failover.py", "infra/lambdas/nat/routes.py"} <= set(archive)


def test_probe_lambdas_sit_in_subnets_pinned_to_their_instance(plans):
    plan = plans["dev"]
    subnets = ids(plan, "aws:ec2/subnet:Subnet")
    assert subnets["nat-probe-a"].inputs["cidrBlock"] == "10.10.253.0/28"
    for suffix in "ab":
        route = one(plan, "aws:ec2/route:Route", f"nat-probe-{suffix}").inputs
        instance_id = plan.outputs["natInstanceIds"][f"eu-west-1{suffix}"]
        assert route["networkInterfaceId"] == f"eni-{instance_id.rsplit('-', 1)[1]}"
        probe = one(plan, "aws:lambda/function:Function", f"nat-probe-{suffix}").inputs
        assert probe["vpcConfig"]["subnetIds"][0].startswith(f"nat-probe-{suffix}-")
        assert json.loads(probe["environment"]["variables"]["NAT_PROBE_TARGETS"])


def test_alarms_notify_the_topic(plans):
    plan = plans["prod"]
    alarms = ids(plan, "aws:cloudwatch/metricAlarm:MetricAlarm")
    topic = plan.outputs["natTopicArn"]
    for suffix in "ab":
        status = alarms[f"nat-status-{suffix}"].inputs
        assert status["metricName"] == "StatusCheckFailed" and status["period"] == 60
        assert status["dimensions"]["InstanceId"] == plan.outputs["natInstanceIds"][f"eu-west-1{suffix}"]
        assert status["alarmActions"] == [topic]
    assert alarms["nat-down"].inputs["threshold"] == 1 and alarms["nat-degraded"].inputs["threshold"] == 2
    assert alarms["nat-silent"].inputs["treatMissingData"] == "breaching"
    emails = plan.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert [e.inputs["endpoint"] for e in emails if e.name.startswith("nat-")] == ["platform-oncall@example.com"]


def test_event_rules_trigger_the_failover_function(plans):
    plan = plans["prod"]
    rules = ids(plan, "aws:cloudwatch/eventRule:EventRule")
    state = json.loads(rules["nat-state"].inputs["eventPattern"])
    assert state["detail"]["state"] == FAILING_STATES
    assert state["detail"]["instance-id"] == sorted(plan.outputs["natInstanceIds"].values())
    alarm = json.loads(rules["nat-alarm"].inputs["eventPattern"])
    alarms = ids(plan, "aws:cloudwatch/metricAlarm:MetricAlarm")
    assert alarm["resources"] == sorted(f"arn:aws:cloudwatch:eu-west-1:123456789012:nat-status-{s}" for s in "ab")
    assert "nat-status-a" in alarms
    assert rules["nat-schedule"].inputs["scheduleExpression"] == "rate(1 minute)"
    targets = [t for t in plan.of_type("aws:cloudwatch/eventTarget:EventTarget") if t.name.startswith("nat-")]
    assert sorted(t.name for t in targets) == ["nat-alarm", "nat-schedule", "nat-state"]
    failover = plan.outputs["natFailoverFunction"]
    assert {t.inputs["arn"] for t in targets} == {f"arn:aws:lambda:eu-west-1:123456789012:function:{failover}"}
    permissions = [p for p in plan.of_type("aws:lambda/permission:Permission") if p.name.startswith("nat-")]
    assert {p.inputs["principal"] for p in permissions} == {"events.amazonaws.com"} and len(permissions) == 3


def _with_nat(env: str, **nat) -> dict:
    raw = read_stack_file(env)
    raw["eks-platform:nat"] = {**raw.get("eks-platform:nat", {}), **nat}
    return raw


def test_gateway_mode_routes_to_nat_gateways_without_lambdas():
    raw = _with_nat("prod", mode="gateway")
    plan = plan_config(from_mapping("prod", raw), raw)
    gateways = plan.of_type("aws:ec2/natGateway:NatGateway")
    assert len(gateways) == 2
    routes = [r for r in plan.of_type("aws:ec2/route:Route") if r.name.startswith("nat-")]
    assert len(routes) == 3 and all(r.inputs["natGatewayId"].startswith("nat-") for r in routes)
    assert not [f for f in plan.of_type("aws:lambda/function:Function") if f.name.startswith("nat-")]
    assert plan.outputs["natInstanceIds"] == {} and plan.outputs["natMode"] == "gateway"


def test_none_mode_declares_no_egress():
    raw = _with_nat("dev", mode="none")
    plan = plan_config(from_mapping("dev", raw), raw)
    assert not [r for r in plan.resources if r.name.startswith("nat-")]
    assert not plan.of_type("aws:ec2/route:Route")


@pytest.mark.parametrize(("nat", "key", "fragment"), [
    ({"mode": "cheap"}, "eks-platform:nat.mode", "dual-instance"),
    ({"azs": ["eu-west-1a", "eu-west-1z"]}, "eks-platform:nat.azs", "not in network.azs"),
    ({"instance_type": "t3.nano"}, "eks-platform:nat", "match them"),
    ({"probe_targets": ["ftp://x"]}, "eks-platform:nat.probe_targets", "tcp://host:port"),
    ({"probe_timeout_seconds": 5, "probe_interval_seconds": 2}, "eks-platform:nat", "probe_timeout_seconds"),
    ({"failure_threshold": 0}, "eks-platform:nat.failure_threshold", "greater than or equal"),
])
def test_bad_nat_config_names_the_key(nat, key, fragment):
    with pytest.raises(ConfigError) as caught:
        from_mapping("dev", _with_nat("dev", **nat))
    issues = [issue for issue in caught.value.issues if issue.key == key]
    assert issues and fragment in issues[0].problem, caught.value.render()


def test_single_az_network_cannot_host_two_nat_instances():
    raw = read_stack_file("dev")
    raw["eks-platform:network"] = {**raw["eks-platform:network"], "azs": ["eu-west-1a"]}
    with pytest.raises(ConfigError, match="nat.mode: dual-instance needs two AZs"):
        from_mapping("dev", raw)
