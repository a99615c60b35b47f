"""The NAT component under Pulumi mocks: routes, instances, IAM scoping, alarms, event rules, modes, config errors."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest

from infra.components.nat import lambda_code, route_homes
from infra.config import ConfigError, from_mapping, load_stack_config, read_stack_file
from infra.lambdas.nat.contract import (
    AZ_TAG,
    FAILING_STATES,
    HEALTH_TAG,
    LAUNCH_TRANSITION,
    NAMESPACE,
    STACK_TAG,
    Metric,
)
from infra.plan.offline import plan_config


@pytest.fixture
def plans(stack_plans):
    """The session's plans of both real stack files (tests/conftest.py), shared with other plan tests."""
    return stack_plans


def one(plan, type_, name):
    found = [r for r in plan.of_type(type_) if r.name == name]
    assert len(found) == 1, f"{type_} {name}: {len(found)}"
    return found[0]


def mock_id(resource) -> str:
    """The ID the mocks give a resource (infra/plan/offline.py): what other resources' inputs reference."""
    return f"{resource.name}-{hashlib.sha1(f'{resource.type}/{resource.name}'.encode()).hexdigest()[:12]}"


def ids(plan, type_):
    """Mock IDs are `<name>-<digest>`: resource name -> the ID other inputs reference."""
    return {r.name: r for r in plan.of_type(type_)}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_private_default_routes_belong_to_the_failover_not_to_pulumi(plans, env):
    """The launch hook creates them and the Lambda/nat.rotate move them: a `pulumi up` never moves egress."""
    plan, cfg = plans[env], load_stack_config(env)
    tables = plan.outputs["natRouteTableIds"]
    assert not [r for r in plan.of_type("aws:ec2/route:Route") if r.name.startswith("nat-")]
    env_vars = one(plan, "aws:lambda/function:Function", "nat-failover").inputs["environment"]["variables"]
    homes = route_homes(cfg)
    assert json.loads(env_vars["NAT_ROUTE_TABLES"]) == {tables[az]: homes[az] for az in tables}
    assert plan.outputs["natRouteHomes"] == homes
    if env == "prod":
        assert homes == {"eu-west-1a": "eu-west-1a", "eu-west-1b": "eu-west-1b", "eu-west-1c": "eu-west-1a"}


def test_each_nat_az_is_an_auto_scaling_group_of_one_adopted_by_the_launch_hook(plans):
    plan = plans["prod"]
    groups = {g.name: g.inputs for g in plan.of_type("aws:autoscaling/group:Group")}
    assert sorted(groups) == ["nat-a", "nat-b"]
    template = one(plan, "aws:ec2/launchTemplate:LaunchTemplate", "nat-instance")
    for suffix, group in groups.items():
        az = f"eu-west-1{suffix[-1]}"
        assert (group["minSize"], group["maxSize"], group["desiredCapacity"]) == (1, 1, 1)
        assert group["healthCheckType"] == "EC2" and group["namePrefix"] == f"eks-prod-nat-{suffix[-1]}-"
        assert group["launchTemplate"]["id"] == mock_id(template)
        hook = group["initialLifecycleHooks"][0]
        assert hook["lifecycleTransition"] == LAUNCH_TRANSITION and hook["defaultResult"] == "ABANDON"
        tags = {tag["key"]: (tag["value"], tag["propagateAtLaunch"]) for tag in group["tags"]}
        assert tags[STACK_TAG] == ("eks-prod", True) and tags[AZ_TAG] == (az, True)
    assert plan.outputs["natGroupNames"] == {f"eu-west-1{s[-1]}": s for s in groups}
    assert all(urn.endswith(f"Group::nat-{az[-1]}") for az, urn in plan.outputs["natInstanceUrns"].items())
    addresses = {e.name: e.inputs for e in plan.of_type("aws:ec2/eip:Eip")}
    assert {addresses[f"nat-{s}"]["tags"][STACK_TAG] for s in "ab"} == {"eks-prod"}
    assert "instance" not in addresses["nat-a"]  # the hook associates it with whichever instance is current


def test_instances_are_hardened_nat_boxes(plans):
    plan, cfg = plans["prod"], load_stack_config("prod")
    assert not plan.of_type("aws:ec2/instance:Instance")  # every NAT instance comes from its group
    template = one(plan, "aws:ec2/launchTemplate:LaunchTemplate", "nat-instance").inputs
    assert template["imageId"] == "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
    assert template["instanceType"] == "t4g.small" and "keyName" not in template
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1
    interface = template["networkInterfaces"][0]
    assert interface["associatePublicIpAddress"] == "false"  # its only public address is the AZ's EIP
    script = base64.b64decode(template["userData"]).decode()
    assert f"-s {cfg.network.cidr} -j MASQUERADE" in script and "net.ipv4.ip_forward = 1" in script
    assert "systemctl disable --now sshd" in script
    group = one(plan, "aws:ec2/securityGroup:SecurityGroup", "nat-instances")
    assert interface["securityGroups"] == [mock_id(group)]
    assert [rule["cidrBlocks"] for rule in group.inputs["ingress"]] == [[str(cfg.network.cidr)]]
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
    tables = [*plan.outputs["natRouteTableIds"].values(),
              *[mock_id(r) for r in plan.of_type("aws:ec2/routeTable:RouteTable") if r.name.startswith("nat-probe-")]]
    assert by_sid["MoveDefaultRoutes"]["Resource"] == sorted(
        f"arn:aws:ec2:eu-west-1:123456789012:route-table/{table}" for table in tables)
    assert by_sid["HealthTag"]["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"] == [HEALTH_TAG]
    stack = plan.outputs["natFailoverFunction"].removesuffix("-nat-failover")
    adopt = by_sid["AdoptInstance"]
    assert adopt["Condition"] == {"StringEquals": {f"aws:ResourceTag/{STACK_TAG}": stack}}
    assert sorted(adopt["Action"]) == ["ec2:AssociateAddress", "ec2:ModifyInstanceAttribute"]
    assert adopt["Resource"] == "arn:aws:ec2:eu-west-1:123456789012:instance/*"
    eips = sorted(mock_id(e) for e in plan.of_type("aws:ec2/eip:Eip"))
    assert by_sid["AdoptAddress"]["Action"] == "ec2:AssociateAddress"
    assert by_sid["AdoptAddress"]["Resource"][:-1] == [f"arn:aws:ec2:eu-west-1:123456789012:elastic-ip/{eip}"
                                                       for eip in eips]
    assert by_sid["CompleteLaunch"]["Resource"].endswith(f"autoScalingGroupName/{stack}-nat-*")
    assert by_sid["Metrics"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}
    assert by_sid["Notify"]["Resource"] == plan.outputs["natTopicArn"]
    (topic,) = [t for t in plan.of_type("aws:sns/topic:Topic") if t.name == "nat-events"]
    assert by_sid["NotifyEncrypted"]["Resource"] == topic.inputs["kmsMasterKeyId"], "publishing to it needs its key"
    assert len(by_sid["Probe"]["Resource"]) == 2


def test_failover_function_configuration(plans):
    plan = plans["prod"]
    function = one(plan, "aws:lambda/function:Function", "nat-failover").inputs
    assert function["handler"] == "infra/lambdas/nat/failover.handler" and function["timeout"] == 63
    env = function["environment"]["variables"]
    assert set(json.loads(env["NAT_PROBE_FUNCTIONS"])) == {"eu-west-1a", "eu-west-1b"}
    probe_tables = {r.name: mock_id(r) for r in plan.of_type("aws:ec2/routeTable:RouteTable")}
    assert json.loads(env["NAT_PROBE_TABLES"]) == {f"eu-west-1{s}": probe_tables[f"nat-probe-{s}"] for s in "ab"}
    eips = {e.name: mock_id(e) for e in plan.of_type("aws:ec2/eip:Eip")}
    assert json.loads(env["NAT_ADDRESSES"]) == {f"eu-west-1{s}": eips[f"nat-{s}"] for s in "ab"}
    assert (env["NAT_FAILBACK_CHECKS"], env["NAT_FAILBACK_MIN_SECONDS"]) == ("60", "300")
    assert (env["NAT_PROBE_MODE"], env["NAT_PROBE_UNKNOWN_LIMIT"]) == ("echo", "10")
    assert "vpcConfig" not in function  # outside the VPC: its AWS calls never depend on the NAT it judges
    invoke = one(plan, "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig", "nat-failover").inputs
    assert (invoke["maximumRetryAttempts"], invoke["maximumEventAgeInSeconds"]) == (0, 60)
    archive = lambda_code().assets
    assert {"infra/__init__.py", "infra/lambdas/nat/failover.py", "infra/lambdas/nat/contract.py"} <= set(archive)


def test_probe_lambdas_sit_in_subnets_whose_route_the_failover_pins(plans):
    plan = plans["dev"]
    subnets = ids(plan, "aws:ec2/subnet:Subnet")
    assert subnets["nat-probe-a"].inputs["cidrBlock"] == "10.10.253.0/28"
    for suffix in "ab":
        probe = one(plan, "aws:lambda/function:Function", f"nat-probe-{suffix}").inputs
        assert probe["vpcConfig"]["subnetIds"][0].startswith(f"nat-probe-{suffix}-")
        variables = probe["environment"]["variables"]
        assert json.loads(variables["NAT_PROBE_TARGETS"])
        assert variables["NAT_PROBE_ECHO"] == "https://checkip.amazonaws.com/"


def test_alarms_notify_the_topic(plans):
    plan = plans["prod"]
    alarms = ids(plan, "aws:cloudwatch/metricAlarm:MetricAlarm")
    topic = plan.outputs["natTopicArn"]
    assert not [name for name in alarms if name.startswith("nat-status-")]  # EC2 health checks replace instead
    for suffix in "ab":
        unknown = alarms[f"nat-probe-unknown-{suffix}"].inputs
        assert (unknown["metricName"], unknown["namespace"]) == (Metric.PROBE_UNKNOWN, NAMESPACE)
        assert unknown["dimensions"]["AZ"] == f"eu-west-1{suffix}" and unknown["threshold"] == 10
        assert unknown["alarmActions"] == [topic]
    assert alarms["nat-down"].inputs["threshold"] == 1 and alarms["nat-degraded"].inputs["threshold"] == 2
    assert alarms["nat-silent"].inputs["treatMissingData"] == "breaching"
    assert alarms["nat-aws-errors"].inputs["metricName"] == Metric.AWS_ERRORS
    emails = plan.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert [e.inputs["endpoint"] for e in emails if e.name.startswith("nat-")] == ["platform-oncall@example.com"]


def test_the_topic_is_encrypted_with_a_key_cloudwatch_may_use(plans):
    """An alarm to a topic whose key CloudWatch may not use is dropped without a trace (policy pack:
    sns-alarm-topic-key-usable); the account keeps administering the key through IAM."""
    plan = plans["prod"]
    key = one(plan, "aws:kms/key:Key", "nat-events")
    topic = one(plan, "aws:sns/topic:Topic", "nat-events")
    assert topic.inputs["kmsMasterKeyId"].startswith("arn:aws:kms:") and key.urn in topic.dependencies
    by_sid = {s["Sid"]: s for s in json.loads(key.inputs["policy"])["Statement"]}
    assert by_sid["CloudWatchAlarms"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert sorted(by_sid["CloudWatchAlarms"]["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert by_sid["Account"]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert key.inputs["enableKeyRotation"] is True


def test_event_rules_trigger_the_failover_function(plans):
    plan = plans["prod"]
    rules = ids(plan, "aws:cloudwatch/eventRule:EventRule")
    state = json.loads(rules["nat-state"].inputs["eventPattern"])
    assert state["detail"] == {"state": list(FAILING_STATES)}  # replacements have IDs no pattern can know
    launch = json.loads(rules["nat-launch"].inputs["eventPattern"])
    assert launch["detail"]["AutoScalingGroupName"] == [{"prefix": "eks-prod-nat-"}]
    assert launch["detail"]["LifecycleTransition"] == [LAUNCH_TRANSITION]
    assert rules["nat-schedule"].inputs["scheduleExpression"] == "rate(1 minute)"
    targets = {t.name: t.inputs for t in plan.of_type("aws:cloudwatch/eventTarget:EventTarget") if t.name.startswith("nat-")}
    assert sorted(targets) == ["nat-launch", "nat-schedule", "nat-state"]
    failover = plan.outputs["natFailoverFunction"]
    assert {t["arn"] for t in targets.values()} == {f"arn:aws:lambda:eu-west-1:123456789012:function:{failover}"}
    assert targets["nat-schedule"]["retryPolicy"]["maximumRetryAttempts"] == 0
    assert targets["nat-launch"]["retryPolicy"]["maximumEventAgeInSeconds"] < 180  # within the hook's heartbeat
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
    assert plan.outputs["natGroupNames"] == {} and plan.outputs["natMode"] == "gateway"


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
    ({"failure_threshold": 0}, "eks-platform:nat.failure_threshold", "must be from 1 to 10, got 0"),
    ({"probe_mode": "icmp"}, "eks-platform:nat.probe_mode", "echo"),
    ({"probe_echo_url": "ftp://x"}, "eks-platform:nat.probe_echo_url", "http(s)://host"),
    ({"probe_echo_url": ""}, "eks-platform:nat", "probe_mode: tcp"),
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
