"""Private-subnet egress per stack (`eks-platform:nat.mode`): dual NAT instances, NAT Gateways, or none.

dual-instance: two NAT instances in different AZs (AL2023, ARM by default, IMDSv2 only, no SSH, SSM), each
the only member of its own Auto Scaling group (same launch template), so a terminated or impaired
instance is replaced without anyone running `nat.rotate`. The group's launch lifecycle hook hands every new
instance to the failover Lambda (infra/lambdas/nat/launch.py), which associates the AZ's Elastic IP, turns
off the source/destination check, points the AZ's probe subnet at it and creates missing default routes
before the instance enters service. Failover is run-time state: the Lambda and `invoke nat.rotate` own the
private default routes (ReplaceRoute/CreateRoute), so Pulumi declares none of them and never moves routes
behind their back. Each NAT AZ also gets a /28 probe subnet where a small probe Lambda tests egress
through exactly that AZ's instance, proving the path by the source address an echo target sees.
"""
from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.components.iam import scoped_profile_args, scoped_role_args
from infra.config import StackConfig, nat_azs, nat_probe_subnets
from infra.lambdas.nat.contract import (
    AZ_TAG,
    FAILING_STATES,
    HEALTH_TAG,
    LAUNCH_ACTION,
    LAUNCH_TRANSITION,
    NAMESPACE,
    STACK_TAG,
    STATE_CHANGE,
    Metric,
)

LAMBDAS = Path(__file__).resolve().parent.parent / "lambdas"
NAT_LAMBDAS = LAMBDAS / "nat"
LAUNCH_HOOK = "nat-adopt"
HOOK_TIMEOUT_S = 180  # the Lambda adopts a new instance in seconds; ABANDON (relaunch) if it never answers
ASSUME_LAMBDA = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
ASSUME_EC2 = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


@dataclass(frozen=True)
class NatArgs:
    config: StackConfig
    vpc_id: pulumi.Input[str]
    public_subnet_ids: dict[str, pulumi.Input[str]]
    private_route_table_ids: dict[str, pulumi.Input[str]]
    tags: dict[str, str] = field(default_factory=dict)


def route_homes(cfg: StackConfig) -> dict[str, str]:
    """Private AZ -> NAT AZ serving it: its own when it has one, else round-robin over the NAT AZs."""
    nats = nat_azs(cfg)
    spare = iter(range(len(cfg.network.azs)))
    return {az: az if az in nats else nats[next(spare) % len(nats)] for az in cfg.network.azs}


def lambda_code() -> pulumi.AssetArchive:
    """infra/lambdas/nat as the package `infra.lambdas.nat` (handlers import their siblings by that name)."""
    assets: dict[str, pulumi.Asset | pulumi.Archive] = {"infra/__init__.py": pulumi.StringAsset(""),
                                                          "infra/lambdas/__init__.py": pulumi.FileAsset(
                                                              str(LAMBDAS / "__init__.py"))}
    for module in sorted(NAT_LAMBDAS.glob("*.py")):
        assets[f"infra/lambdas/nat/{module.name}"] = pulumi.FileAsset(str(module))
    return pulumi.AssetArchive(assets)


def user_data(vpc_cidr: str) -> str:
    """Forwarding + masquerade for the VPC, persisted; retries dnf until the Elastic IP gives egress."""
    script = f"""#!/bin/bash
set -euo pipefail
cat > /etc/sysctl.d/90-nat.conf <<'EOF'
net.ipv4.ip_forward = 1
net.ipv4.conf.all.send_redirects = 0
EOF
sysctl --system
for attempt in $(seq 1 60); do dnf install -y iptables-services && break; sleep 5; done
iface=$(ip route show default | awk '{{print $5; exit}}')
iptables -t nat -F POSTROUTING
iptables -t nat -A POSTROUTING -o "$iface" -s {vpc_cidr} -j MASQUERADE
iptables -F FORWARD
iptables -P FORWARD ACCEPT
iptables-save > /etc/sysconfig/iptables
systemctl enable --now iptables
# No SSH: no key pair is set, and the daemon is off; operators use SSM Session Manager.
systemctl disable --now sshd || true
"""
    return base64.b64encode(script.encode()).decode()


def topic_key_policy(partition: str, account: str) -> str:
    """The events topic's key: the account administers it through IAM (KMS' default key policy), and CloudWatch may
    encrypt the NAT alarms' notifications with it; without that grant an alarm to an encrypted topic is dropped
    silently. Source: SNS "Enable compatibility between event sources from AWS services and encrypted topics",
    https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html (checked 2026-12-05)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Account", "Effect": "Allow", "Principal": {"AWS": f"arn:{partition}:iam::{account}:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "CloudWatchAlarms", "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"},
    ]})


def failover_policy(route_table_arns: list[str], partition: str, region: str, account: str, stack: str,
                    topic_arn: str, probe_arns: list[str], log_group_arn: str, address_arns: list[str],
                    topic_key_arn: str) -> str:
    """Least privilege: describes (which have no resource scope), routes of these tables only, health tags
    and adoption (EIP, source/dest check) only on this stack's tagged NAT instances and addresses, lifecycle
    completion only on this stack's NAT groups, metrics in the NAT namespace, one (encrypted) topic, the probes."""
    instances = f"arn:{partition}:ec2:{region}:{account}:instance/*"
    this_stack = {f"aws:ResourceTag/{STACK_TAG}": stack}
    statements = [
        {"Sid": "Describe", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:DescribeInstances", "ec2:DescribeRouteTables"]},
        {"Sid": "MoveDefaultRoutes", "Effect": "Allow", "Resource": sorted(route_table_arns),
         "Action": ["ec2:ReplaceRoute", "ec2:CreateRoute"]},
        {"Sid": "HealthTag", "Effect": "Allow", "Action": "ec2:CreateTags", "Resource": instances,
         "Condition": {"StringEquals": this_stack, "ForAllValues:StringEquals": {"aws:TagKeys": [HEALTH_TAG]}}},
        # AssociateAddress is authorized per resource (the address, the instance, its interface): the stack's own
        # addresses by ARN, onto this stack's tagged instances (and their interfaces, which carry no tag).
        {"Sid": "AdoptAddress", "Effect": "Allow", "Action": "ec2:AssociateAddress",
         "Resource": [*sorted(address_arns), f"arn:{partition}:ec2:{region}:{account}:network-interface/*"]},
        {"Sid": "AdoptInstance", "Effect": "Allow", "Action": ["ec2:AssociateAddress", "ec2:ModifyInstanceAttribute"],
         "Resource": instances, "Condition": {"StringEquals": this_stack}},
        {"Sid": "CompleteLaunch", "Effect": "Allow", "Action": "autoscaling:CompleteLifecycleAction",
         "Resource": f"arn:{partition}:autoscaling:{region}:{account}:autoScalingGroup:*:"
                     f"autoScalingGroupName/{stack}-nat-*"},
        {"Sid": "Metrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}},
        {"Sid": "Notify", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn},
        {"Sid": "NotifyEncrypted", "Effect": "Allow", "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
         "Resource": topic_key_arn},
        {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"{log_group_arn}:*"},
    ]
    if probe_arns:
        statements.append({"Sid": "Probe", "Effect": "Allow", "Action": "lambda:InvokeFunction",
                           "Resource": sorted(probe_arns)})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class Nat(pulumi.ComponentResource):
    """Default routes of the private route tables, and whatever they point at in the configured mode."""

    def __init__(self, name: str, args: NatArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("eks-platform:nat:Nat", name, None, opts)
        self._child = pulumi.ResourceOptions(parent=self)
        self.name = name
        self.args = args
        cfg = args.config
        self.mode = cfg.nat.mode
        self.homes = route_homes(cfg)
        self.routes: list[pulumi.Resource] = []  # what private egress depends on (see `egress`)
        self.groups: dict[str, aws.autoscaling.Group] = {}
        self.addresses: dict[str, aws.ec2.Eip] = {}
        self.gateways: dict[str, aws.ec2.NatGateway] = {}
        self.probe_functions: dict[str, aws.lambda_.Function] = {}
        self.probe_tables: dict[str, aws.ec2.RouteTable] = {}
        self.topic: aws.sns.Topic | None = None
        self.failover: aws.lambda_.Function | None = None
        if self.mode == "gateway":
            self._gateways()
        elif self.mode == "dual-instance":
            template = self._template()
            self._addresses()
            self._probes()
            failover, topic, ready = self._failover()
            self._groups(template, ready)
            self._schedule(failover)
            self._alarms(topic)
            # The launch hook creates the default routes before a group's instance enters service, and a
            # group is created only when its instance is in service: depending on the groups is depending on egress.
            self.routes = list(self.groups.values())
        self.register_outputs({"mode": self.mode})

    @property
    def stack(self) -> str:
        return self.args.config.cluster.name

    def _tags(self, name: str, **extra: str) -> dict[str, str]:
        return {**self.args.tags, "Name": f"{self.stack}-{name}", **extra}

    def _role(self, suffix: str, assume: str, **managed: str) -> aws.iam.Role:
        """A role for one of this component's principals, with AWS-managed policies attached by short name."""
        role = aws.iam.Role(f"{self.name}-{suffix}", assume_role_policy=assume, tags=self.args.tags, opts=self._child,
                            **scoped_role_args())
        for short, arn in managed.items():
            aws.iam.RolePolicyAttachment(f"{self.name}-{suffix}-{short}", role=role.name, policy_arn=arn,
                                         opts=self._child)
        return role

    def _gateways(self) -> None:
        for az in nat_azs(self.args.config):
            eip = aws.ec2.Eip(f"{self.name}-gw-{az[-1]}", domain="vpc", tags=self._tags(f"nat-{az[-1]}"),
                              opts=self._child)
            self.gateways[az] = aws.ec2.NatGateway(
                f"{self.name}-{az[-1]}", allocation_id=eip.id, subnet_id=self.args.public_subnet_ids[az],
                tags=self._tags(f"nat-{az[-1]}"), opts=self._child)
        for az, table in self.args.private_route_table_ids.items():
            self.routes.append(aws.ec2.Route(f"{self.name}-default-{az[-1]}", route_table_id=table,
                                             destination_cidr_block="0.0.0.0/0",
                                             nat_gateway_id=self.gateways[self.homes[az]].id, opts=self._child))

    def _template(self) -> aws.ec2.LaunchTemplate:
        """One launch template for every NAT instance: no public IP of its own (the hook gives it the AZ's EIP)."""
        cfg, nat = self.args.config, self.args.config.nat
        vpc_cidr = str(cfg.network.cidr)
        group = aws.ec2.SecurityGroup(
            f"{self.name}-instances", vpc_id=self.args.vpc_id, description="NAT instances: VPC in, anything out",
            ingress=[aws.ec2.SecurityGroupIngressArgs(protocol="-1", from_port=0, to_port=0, cidr_blocks=[vpc_cidr],
                                                      description="traffic to masquerade")],
            egress=[aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0,
                                                    cidr_blocks=["0.0.0.0/0"])],
            tags=self._tags("nat"), opts=self._child)
        role = self._role("instance", ASSUME_EC2, ssm="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
        profile = aws.iam.InstanceProfile(f"{self.name}-instance", role=role.name, tags=self.args.tags,
                                          opts=self._child, **scoped_profile_args())
        # The AMI resolves at launch: a new AL2023 release never replaces a running NAT, a replacement picks it up.
        return aws.ec2.LaunchTemplate(
            f"{self.name}-instance", image_id=f"resolve:ssm:{nat.ami_parameter}", instance_type=nat.instance_type,
            user_data=user_data(vpc_cidr), update_default_version=True,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
            network_interfaces=[aws.ec2.LaunchTemplateNetworkInterfaceArgs(
                device_index=0, associate_public_ip_address="false", security_groups=[group.id],
                delete_on_termination="true")],
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1,
                instance_metadata_tags="disabled"),
            monitoring=aws.ec2.LaunchTemplateMonitoringArgs(enabled=True),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda", ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=8, volume_type="gp3", encrypted="true", delete_on_termination="true"))],
            tags=self.args.tags, opts=self._child)

    def _addresses(self) -> None:
        """One Elastic IP per NAT AZ, outliving instances; the launch hook moves it to each new instance.
        An association made by an older version of this component (`instance`) is left alone, not undone."""
        for az in nat_azs(self.args.config):
            self.addresses[az] = aws.ec2.Eip(
                f"{self.name}-{az[-1]}", domain="vpc", tags=self._tags(f"nat-{az[-1]}", **{STACK_TAG: self.stack}),
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["instance", "networkInterface",
                                                                         "associateWithPrivateIp"]))

    def _groups(self, template: aws.ec2.LaunchTemplate, ready: list[pulumi.Resource]) -> None:
        """An Auto Scaling group of one per NAT AZ: EC2 health checks replace a stopped, terminated or impaired
        instance; the launch hook holds each new one until the failover Lambda (`ready`) has adopted it."""
        for az in nat_azs(self.args.config):
            suffix = az[-1]
            tags = {"Name": f"{self.stack}-nat-{suffix}", STACK_TAG: self.stack, AZ_TAG: az}
            self.groups[az] = aws.autoscaling.Group(
                f"{self.name}-{suffix}", name_prefix=f"{self.stack}-nat-{suffix}-", min_size=1, max_size=1,
                desired_capacity=1, vpc_zone_identifiers=[self.args.public_subnet_ids[az]],
                launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                    id=template.id, version=template.latest_version.apply(str)),
                health_check_type="EC2", health_check_grace_period=120, wait_for_capacity_timeout="10m",
                initial_lifecycle_hooks=[aws.autoscaling.GroupInitialLifecycleHookArgs(
                    name=LAUNCH_HOOK, lifecycle_transition=LAUNCH_TRANSITION, default_result="ABANDON",
                    heartbeat_timeout=HOOK_TIMEOUT_S)],
                tags=[aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=True)
                      for key, value in sorted(tags.items())],
                opts=pulumi.ResourceOptions(parent=self, depends_on=ready))

    def _probes(self) -> None:
        """Per NAT AZ: a probe subnet whose default route the Lambda pins to the AZ's instance, and a probe
        Lambda inside it."""
        cfg, nat = self.args.config, self.args.config.nat
        group = aws.ec2.SecurityGroup(
            f"{self.name}-probe", vpc_id=self.args.vpc_id, description="NAT egress probes: outbound only",
            egress=[aws.ec2.SecurityGroupEgressArgs(protocol="tcp", from_port=0, to_port=65535,
                                                    cidr_blocks=["0.0.0.0/0"])],
            tags=self._tags("nat-probe"), opts=self._child)
        role = self._role("probe", ASSUME_LAMBDA,
                          vpc="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
        for az, cidr in nat_probe_subnets(cfg).items():
            suffix = az[-1]
            subnet = aws.ec2.Subnet(f"{self.name}-probe-{suffix}", vpc_id=self.args.vpc_id, cidr_block=cidr,
                                    availability_zone=az, tags=self._tags(f"nat-probe-{suffix}", tier="nat-probe"),
                                    opts=self._child)
            self.probe_tables[az] = aws.ec2.RouteTable(
                f"{self.name}-probe-{suffix}", vpc_id=self.args.vpc_id,
                tags=self._tags(f"nat-probe-{suffix}", tier="nat-probe"), opts=self._child)
            aws.ec2.RouteTableAssociation(f"{self.name}-probe-{suffix}", subnet_id=subnet.id,
                                          route_table_id=self.probe_tables[az].id, opts=self._child)
            function_name = f"{self.stack}-nat-probe-{suffix}"
            logs = aws.cloudwatch.LogGroup(f"{self.name}-probe-{suffix}", name=f"/aws/lambda/{function_name}",
                                           retention_in_days=14, tags=self.args.tags, opts=self._child)
            self.probe_functions[az] = aws.lambda_.Function(
                f"{self.name}-probe-{suffix}", name=function_name, runtime="python3.12", architectures=["arm64"],
                handler="infra/lambdas/nat/probe.handler", code=lambda_code(), role=role.arn, memory_size=128,
                timeout=math.ceil(nat.probe_timeout_seconds) + 4, tags=self.args.tags,
                environment=aws.lambda_.FunctionEnvironmentArgs(variables={
                    "NAT_PROBE_TARGETS": json.dumps(nat.probe_targets),
                    "NAT_PROBE_ECHO": nat.probe_echo_url if nat.probe_mode == "echo" else "",
                    "NAT_PROBE_TIMEOUT": str(nat.probe_timeout_seconds)}),
                vpc_config=aws.lambda_.FunctionVpcConfigArgs(subnet_ids=[subnet.id], security_group_ids=[group.id]),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[logs]))

    def _failover(self) -> tuple[aws.lambda_.Function, aws.sns.Topic, list[pulumi.Resource]]:
        """The failover function and its event triggers; returns them and what a NAT group needs before its first
        launch."""
        cfg, nat = self.args.config, self.args.config.nat
        identity, partition = aws.get_caller_identity_output(), aws.get_partition_output()
        self.topic_key = aws.kms.Key(
            f"{self.name}-events", description=f"NAT events topic of {self.stack}", enable_key_rotation=True,
            deletion_window_in_days=30, tags=self.args.tags, opts=self._child,
            policy=pulumi.Output.all(partition.partition, identity.account_id).apply(lambda v: topic_key_policy(*v)))
        self.topic = aws.sns.Topic(f"{self.name}-events", name=f"{self.stack}-nat-events", tags=self.args.tags,
                                   kms_master_key_id=self.topic_key.arn, opts=self._child)
        for index, email in enumerate(nat.alarm_emails):
            aws.sns.TopicSubscription(f"{self.name}-email-{index}", topic=self.topic.arn, protocol="email",
                                      endpoint=email, opts=self._child)
        function_name = f"{self.stack}-nat-failover"
        logs = aws.cloudwatch.LogGroup(f"{self.name}-failover", name=f"/aws/lambda/{function_name}",
                                       retention_in_days=cfg.cluster.log_retention_days, tags=self.args.tags,
                                       opts=self._child)
        role = self._role("failover", ASSUME_LAMBDA)
        tables = self.args.private_route_table_ids
        azs, probe_azs = list(tables), list(self.probe_functions)
        table_ids = [tables[az] for az in azs] + [self.probe_tables[az].id for az in probe_azs]
        table_arns = [pulumi.Output.concat("arn:", partition.partition, ":ec2:", cfg.region, ":", identity.account_id,
                                           ":route-table/", table) for table in table_ids]
        address_arns = [pulumi.Output.concat("arn:", partition.partition, ":ec2:", cfg.region, ":",
                                             identity.account_id, ":elastic-ip/", self.addresses[az].id)
                        for az in probe_azs]
        policy = aws.iam.RolePolicy(
            f"{self.name}-failover", role=role.id, opts=self._child,
            policy=pulumi.Output.all(
                partition=partition.partition, account=identity.account_id, topic=self.topic.arn,
                key=self.topic_key.arn, logs=logs.arn, tables=pulumi.Output.all(*table_arns),
                probes=pulumi.Output.all(*[self.probe_functions[az].arn for az in probe_azs]),
                addresses=pulumi.Output.all(*address_arns)).apply(
                lambda v: failover_policy(list(v["tables"]), v["partition"], cfg.region, v["account"], self.stack,
                                          v["topic"], list(v["probes"]), v["logs"], list(v["addresses"]), v["key"])))
        def as_json(keys: list[str], values: list[pulumi.Output]) -> pulumi.Output:
            return pulumi.Output.all(*values).apply(lambda found: json.dumps(dict(zip(keys, found, strict=True))))

        self.failover = aws.lambda_.Function(
            f"{self.name}-failover", name=function_name, runtime="python3.12", architectures=["arm64"],
            handler="infra/lambdas/nat/failover.handler", code=lambda_code(), role=role.arn,
            memory_size=nat.failover_memory_mb,
            timeout=nat.probe_window_seconds + 8, tags=self.args.tags,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={
                "NAT_STACK": self.stack,
                "NAT_ROUTE_TABLES": pulumi.Output.all(*[tables[az] for az in azs]).apply(
                    lambda ids: json.dumps({table: self.homes[az] for az, table in zip(azs, ids, strict=True)})),
                "NAT_PROBE_FUNCTIONS": as_json(probe_azs, [self.probe_functions[az].name for az in probe_azs]),
                "NAT_PROBE_TABLES": as_json(probe_azs, [self.probe_tables[az].id for az in probe_azs]),
                "NAT_ADDRESSES": as_json(probe_azs, [self.addresses[az].id for az in probe_azs]),
                "NAT_TOPIC_ARN": self.topic.arn,
                "NAT_PROBE_MODE": nat.probe_mode,
                "NAT_PROBE_INTERVAL": str(nat.probe_interval_seconds),
                "NAT_PROBE_TIMEOUT": str(nat.probe_timeout_seconds),
                "NAT_PROBE_UNKNOWN_LIMIT": str(nat.probe_unknown_limit),
                "NAT_FAILURE_THRESHOLD": str(nat.failure_threshold),
                "NAT_FAILBACK_CHECKS": str(nat.failback_checks),
                "NAT_FAILBACK_MIN_SECONDS": str(nat.failback_min_seconds),
                "NAT_PROBE_WINDOW": str(nat.probe_window_seconds)}),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs, policy]))
        # Asynchronous invocations (EventBridge) are never retried by Lambda itself: a retried schedule would
        # overlap the next one, and events are judged against the present anyway.
        retries = aws.lambda_.FunctionEventInvokeConfig(
            f"{self.name}-failover", function_name=self.failover.name, maximum_retry_attempts=0,
            maximum_event_age_in_seconds=60, opts=self._child)
        patterns = {
            "state": {"source": ["aws.ec2"], "detail-type": [STATE_CHANGE], "detail": {"state": list(FAILING_STATES)}},
            "launch": {"source": ["aws.autoscaling"], "detail-type": [LAUNCH_ACTION],
                       "detail": {"AutoScalingGroupName": [{"prefix": f"{self.stack}-nat-"}],
                                  "LifecycleTransition": [LAUNCH_TRANSITION]}},
        }
        ready: list[pulumi.Resource] = [self.failover, retries]
        for kind, pattern in patterns.items():
            rule = aws.cloudwatch.EventRule(f"{self.name}-{kind}", name=f"{self.stack}-nat-{kind}",
                                            event_pattern=json.dumps(pattern), tags=self.args.tags, opts=self._child)
            ready += self._target(kind, rule, self.failover, max_age=HOOK_TIMEOUT_S - 10 if kind == "launch" else 300,
                                  retries=3)
        return self.failover, self.topic, ready

    def _target(self, kind: str, rule: aws.cloudwatch.EventRule, failover: aws.lambda_.Function, max_age: int,
                retries: int) -> list[pulumi.Resource]:
        target = aws.cloudwatch.EventTarget(
            f"{self.name}-{kind}", rule=rule.name, arn=failover.arn,
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(maximum_event_age_in_seconds=max_age,
                                                                   maximum_retry_attempts=retries),
            opts=self._child)
        permission = aws.lambda_.Permission(f"{self.name}-{kind}", action="lambda:InvokeFunction",
                                            function=failover.name, principal="events.amazonaws.com",
                                            source_arn=rule.arn, opts=self._child)
        return [target, permission]

    def _schedule(self, failover: aws.lambda_.Function) -> None:
        """The once-a-minute probe loop, started only once the groups' instances are in service."""
        rule = aws.cloudwatch.EventRule(f"{self.name}-schedule", name=f"{self.stack}-nat-schedule",
                                        schedule_expression="rate(1 minute)", tags=self.args.tags,
                                        opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.groups.values())))
        self._target("schedule", rule, failover, max_age=60, retries=0)

    def _alarms(self, events: aws.sns.Topic) -> None:
        """Fleet health from the Lambda's metrics, probes that cannot judge, AWS trouble, Lambda errors."""
        topic, nat, stack = [events.arn], self.args.config.nat, {"Stack": self.stack}
        function_name = f"{self.stack}-nat-failover"

        def alarm(suffix: str, description: str, resource: str | None = None, **spec) -> None:
            aws.cloudwatch.MetricAlarm(
                f"{self.name}-{resource or suffix}", name=f"{self.stack}-nat-{suffix}", period=60, alarm_actions=topic,
                alarm_description=description, tags=self.args.tags, opts=self._child,
                **{"evaluation_periods": 1, "treat_missing_data": "notBreaching", **spec})

        for suffix, threshold, description in (("degraded", 2, "one NAT instance is out: egress has no redundancy"),
                                               ("down", 1, "no healthy NAT instance: private egress is DOWN")):
            alarm(suffix, description, namespace=NAMESPACE, metric_name=Metric.HEALTHY, dimensions=stack,
                  statistic="Minimum", threshold=threshold, comparison_operator="LessThanThreshold", ok_actions=topic)
        # No health data for 3 minutes means failover itself is broken: as loud as an outage.
        alarm("failover-silent", "the NAT failover Lambda stopped reporting", resource="silent", namespace=NAMESPACE,
              metric_name=Metric.HEALTHY, dimensions=stack, statistic="SampleCount", evaluation_periods=3,
              threshold=1, comparison_operator="LessThanThreshold", treat_missing_data="breaching")
        for az in nat_azs(self.args.config):
            alarm(f"probe-unknown-{az[-1]}", f"the {az} NAT probe cannot judge its path (erroring, stuck or "
                  f"unproven); past {nat.probe_unknown_limit} rounds it counts as a failure",
                  namespace=NAMESPACE, metric_name=Metric.PROBE_UNKNOWN, dimensions={**stack, "AZ": az},
                  statistic="Sum", threshold=nat.probe_unknown_limit, comparison_operator="GreaterThanOrEqualToThreshold",
                  ok_actions=topic)
        alarm("aws-errors", "the NAT failover Lambda's AWS calls keep failing after retries (throttling, "
              "permissions, a stale route table): failover may not complete", namespace=NAMESPACE,
              metric_name=Metric.AWS_ERRORS, dimensions=stack, statistic="Sum", evaluation_periods=3,
              threshold=1, comparison_operator="GreaterThanOrEqualToThreshold")
        alarm("failover-errors", "the NAT failover Lambda raised", namespace="AWS/Lambda", metric_name="Errors",
              dimensions={"FunctionName": function_name}, statistic="Sum", threshold=1,
              comparison_operator="GreaterThanOrEqualToThreshold")

    def outputs(self) -> dict[str, object]:
        """Stack outputs for ops engines (`invoke nat.status/rotate/drill`). natInstanceUrns names, per NAT AZ,
        the resource whose replacement replaces that AZ's instance: its Auto Scaling group."""
        return {"natMode": self.mode,
                "natGroupNames": {az: group.name for az, group in self.groups.items()},
                "natInstanceUrns": {az: group.urn for az, group in self.groups.items()},
                "natRouteTableIds": dict(self.args.private_route_table_ids),
                "natRouteHomes": self.homes,
                "natProbeFunctions": {az: function.name for az, function in self.probe_functions.items()},
                "natTopicArn": self.topic.arn if self.topic else None,
                "natFailoverFunction": self.failover.name if self.failover else None}
