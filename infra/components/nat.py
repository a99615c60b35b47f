"""Private-subnet egress per stack (`eks-platform:nat.mode`): dual NAT instances, NAT Gateways, or none.

dual-instance: two NAT instances in different AZs (AL2023, ARM by default, IMDSv2 only, no SSH, SSM),
each with an Elastic IP; every private route table's default route points at its home instance (its
own AZ's, or round-robin over the two when there are more AZs). Failover is run-time state: the
failover Lambda (infra/lambdas/nat/failover.py) and `invoke nat.rotate` move routes with ReplaceRoute,
so the Route resources ignore their target after creation and Pulumi never moves routes back behind
their back. Each instance also gets a /28 probe subnet whose default route is pinned to it, where a
small probe Lambda tests egress through exactly that instance.
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
from infra.lambdas.nat.health import AZ_TAG, DRAIN_TAG, HEALTH_TAG, STACK_TAG

LAMBDAS = Path(__file__).resolve().parent.parent / "lambdas"
NAT_LAMBDAS = LAMBDAS / "nat"
NAMESPACE = "EksPlatform/NAT"
FAILING_STATES = ["stopping", "stopped", "shutting-down", "terminated"]
ASSUME_LAMBDA = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
ASSUME_EC2 = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
# Tags the Lambda and `nat.rotate` write at run time; Pulumi must not strip them on the next `up`.
RUNTIME_TAGS = [f'{prop}["{key}"]' for prop in ("tags", "tagsAll") for key in (HEALTH_TAG, DRAIN_TAG)]


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


def failover_policy(route_table_arns: list[str], partition: str, region: str, account: str, stack: str,
                    topic_arn: str, probe_arns: list[str], log_group_arn: str) -> str:
    """Least privilege: describes (which have no resource scope), ReplaceRoute on these tables only,
    health tags only on this stack's NAT instances, metrics in the NAT namespace, one topic, the probes."""
    statements = [
        {"Sid": "Describe", "Effect": "Allow", "Resource": "*",
         "Action": ["ec2:DescribeInstances", "ec2:DescribeRouteTables"]},
        {"Sid": "MoveDefaultRoutes", "Effect": "Allow", "Resource": sorted(route_table_arns),
         "Action": ["ec2:ReplaceRoute", "ec2:CreateRoute"]},
        {"Sid": "HealthTag", "Effect": "Allow", "Action": "ec2:CreateTags",
         "Resource": f"arn:{partition}:ec2:{region}:{account}:instance/*",
         "Condition": {"StringEquals": {f"aws:ResourceTag/{STACK_TAG}": stack},
                       "ForAllValues:StringEquals": {"aws:TagKeys": [HEALTH_TAG]}}},
        {"Sid": "Metrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*",
         "Condition": {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}},
        {"Sid": "Notify", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn},
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
        self.routes: list[aws.ec2.Route] = []
        self.instances: dict[str, aws.ec2.Instance] = {}
        self.gateways: dict[str, aws.ec2.NatGateway] = {}
        self.topic: aws.sns.Topic | None = None
        self.failover: aws.lambda_.Function | None = None
        if self.mode == "gateway":
            self._gateways()
        elif self.mode == "dual-instance":
            self._instances()
            self._failover()
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

    def _instances(self) -> None:
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
        # The AMI resolves at launch: a new AL2023 release never replaces a running NAT, `nat.rotate` picks it up.
        template = aws.ec2.LaunchTemplate(
            f"{self.name}-instance", image_id=f"resolve:ssm:{nat.ami_parameter}", instance_type=nat.instance_type,
            user_data=user_data(vpc_cidr), update_default_version=True,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1,
                instance_metadata_tags="disabled"),
            monitoring=aws.ec2.LaunchTemplateMonitoringArgs(enabled=True),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda", ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=8, volume_type="gp3", encrypted="true", delete_on_termination="true"))],
            tags=self.args.tags, opts=self._child)
        for az in nat_azs(cfg):
            instance = aws.ec2.Instance(
                f"{self.name}-{az[-1]}", subnet_id=self.args.public_subnet_ids[az], source_dest_check=False,
                vpc_security_group_ids=[group.id],
                launch_template=aws.ec2.InstanceLaunchTemplateArgs(id=template.id, version=template.latest_version),
                tags=self._tags(f"nat-{az[-1]}", **{STACK_TAG: self.stack, AZ_TAG: az}),
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=RUNTIME_TAGS))
            self.instances[az] = instance
            aws.ec2.Eip(f"{self.name}-{az[-1]}", domain="vpc", instance=instance.id,
                        tags=self._tags(f"nat-{az[-1]}"), opts=self._child)
        for az, table in self.args.private_route_table_ids.items():
            # Created pointing home; afterwards the failover Lambda and `nat.rotate` own the target.
            self.routes.append(aws.ec2.Route(
                f"{self.name}-default-{az[-1]}", route_table_id=table, destination_cidr_block="0.0.0.0/0",
                network_interface_id=self.instances[self.homes[az]].primary_network_interface_id,
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["networkInterfaceId", "instanceId"])))

    def _probes(self) -> dict[str, aws.lambda_.Function]:
        """Per NAT instance: a probe subnet pinned to it, and a probe Lambda inside that subnet."""
        cfg, nat = self.args.config, self.args.config.nat
        group = aws.ec2.SecurityGroup(
            f"{self.name}-probe", vpc_id=self.args.vpc_id, description="NAT egress probes: outbound only",
            egress=[aws.ec2.SecurityGroupEgressArgs(protocol="tcp", from_port=0, to_port=65535,
                                                    cidr_blocks=["0.0.0.0/0"])],
            tags=self._tags("nat-probe"), opts=self._child)
        role = self._role("probe", ASSUME_LAMBDA,
                          vpc="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole")
        probes: dict[str, aws.lambda_.Function] = {}
        for az, cidr in nat_probe_subnets(cfg).items():
            suffix = az[-1]
            subnet = aws.ec2.Subnet(f"{self.name}-probe-{suffix}", vpc_id=self.args.vpc_id, cidr_block=cidr,
                                    availability_zone=az, tags=self._tags(f"nat-probe-{suffix}", tier="nat-probe"),
                                    opts=self._child)
            table = aws.ec2.RouteTable(f"{self.name}-probe-{suffix}", vpc_id=self.args.vpc_id,
                                       tags=self._tags(f"nat-probe-{suffix}", tier="nat-probe"), opts=self._child)
            aws.ec2.RouteTableAssociation(f"{self.name}-probe-{suffix}", subnet_id=subnet.id, route_table_id=table.id,
                                          opts=self._child)
            aws.ec2.Route(f"{self.name}-probe-{suffix}", route_table_id=table.id, destination_cidr_block="0.0.0.0/0",
                          network_interface_id=self.instances[az].primary_network_interface_id, opts=self._child)
            function_name = f"{self.stack}-nat-probe-{suffix}"
            logs = aws.cloudwatch.LogGroup(f"{self.name}-probe-{suffix}", name=f"/aws/lambda/{function_name}",
                                           retention_in_days=14, tags=self.args.tags, opts=self._child)
            probes[az] = aws.lambda_.Function(
                f"{self.name}-probe-{suffix}", name=function_name, runtime="python3.12", architectures=["arm64"],
                handler="infra/lambdas/nat/probe.handler", code=lambda_code(), role=role.arn, memory_size=128,
                timeout=math.ceil(nat.probe_timeout_seconds) + 4, tags=self.args.tags,
                environment=aws.lambda_.FunctionEnvironmentArgs(variables={
                    "NAT_PROBE_TARGETS": json.dumps(nat.probe_targets),
                    "NAT_PROBE_TIMEOUT": str(nat.probe_timeout_seconds)}),
                vpc_config=aws.lambda_.FunctionVpcConfigArgs(subnet_ids=[subnet.id], security_group_ids=[group.id]),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[logs]))
        return probes

    def _failover(self) -> None:
        cfg, nat = self.args.config, self.args.config.nat
        probes = self._probes()
        self.topic = aws.sns.Topic(f"{self.name}-events", name=f"{self.stack}-nat-events", tags=self.args.tags,
                                   opts=self._child)
        for index, email in enumerate(nat.alarm_emails):
            aws.sns.TopicSubscription(f"{self.name}-email-{index}", topic=self.topic.arn, protocol="email",
                                      endpoint=email, opts=self._child)
        function_name = f"{self.stack}-nat-failover"
        logs = aws.cloudwatch.LogGroup(f"{self.name}-failover", name=f"/aws/lambda/{function_name}",
                                       retention_in_days=cfg.cluster.log_retention_days, tags=self.args.tags,
                                       opts=self._child)
        role = self._role("failover", ASSUME_LAMBDA)
        identity, partition = aws.get_caller_identity_output(), aws.get_partition_output()
        tables = self.args.private_route_table_ids
        azs = list(tables)
        table_arns = [pulumi.Output.concat("arn:", partition.partition, ":ec2:", cfg.region, ":", identity.account_id,
                                           ":route-table/", tables[az]) for az in azs]
        probe_azs = list(probes)
        policy = aws.iam.RolePolicy(
            f"{self.name}-failover", role=role.id, opts=self._child,
            policy=pulumi.Output.all(partition.partition, identity.account_id, self.topic.arn, logs.arn,
                                     *table_arns, *[probes[az].arn for az in probe_azs]).apply(
                lambda v: failover_policy(list(v[4:4 + len(azs)]), v[0], cfg.region, v[1], self.stack, v[2],
                                          list(v[4 + len(azs):]), v[3])))
        homes = pulumi.Output.all(*[tables[az] for az in azs]).apply(
            lambda ids: json.dumps({table: self.homes[az] for az, table in zip(azs, ids, strict=True)}))
        probe_names = pulumi.Output.all(*[probes[az].name for az in probe_azs]).apply(
            lambda names: json.dumps(dict(zip(probe_azs, names, strict=True))))
        self.failover = aws.lambda_.Function(
            f"{self.name}-failover", name=function_name, runtime="python3.12", architectures=["arm64"],
            handler="infra/lambdas/nat/failover.handler", code=lambda_code(), role=role.arn, memory_size=128,
            timeout=nat.probe_window_seconds + 8, tags=self.args.tags,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={
                "NAT_STACK": self.stack, "NAT_ROUTE_TABLES": homes, "NAT_PROBE_FUNCTIONS": probe_names,
                "NAT_TOPIC_ARN": self.topic.arn, "NAT_METRIC_NAMESPACE": NAMESPACE,
                "NAT_PROBE_INTERVAL": str(nat.probe_interval_seconds),
                "NAT_FAILURE_THRESHOLD": str(nat.failure_threshold),
                "NAT_FAILBACK_CHECKS": str(nat.failback_checks),
                "NAT_FAILBACK_MIN_SECONDS": str(nat.failback_min_seconds),
                "NAT_PROBE_WINDOW": str(nat.probe_window_seconds)}),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs, policy]))
        status_alarms = self._alarms(function_name)
        self._rules(status_alarms)

    def _alarms(self, function_name: str) -> list[aws.cloudwatch.MetricAlarm]:
        """Instance status checks (also a failover trigger), fleet health from the Lambda's metrics, Lambda errors."""
        topic = [self.topic.arn]
        status = [aws.cloudwatch.MetricAlarm(
            f"{self.name}-status-{az[-1]}", name=f"{self.stack}-nat-{az[-1]}-status-check",
            namespace="AWS/EC2", metric_name="StatusCheckFailed", statistic="Maximum", period=60,
            evaluation_periods=1, threshold=1, comparison_operator="GreaterThanOrEqualToThreshold",
            # "missing": a replacement without data yet must not page or fail over; stops come as state events.
            dimensions={"InstanceId": instance.id}, treat_missing_data="missing", alarm_actions=topic,
            ok_actions=topic, alarm_description=f"NAT instance in {az} failed a status check; routes fail over",
            tags=self.args.tags, opts=self._child) for az, instance in self.instances.items()]
        fleet = [("degraded", 2, "notBreaching", "one NAT instance is out: egress has no redundancy"),
                 ("down", 1, "notBreaching", "no healthy NAT instance: private egress is DOWN")]
        for suffix, threshold, missing, description in fleet:
            aws.cloudwatch.MetricAlarm(
                f"{self.name}-{suffix}", name=f"{self.stack}-nat-{suffix}", namespace=NAMESPACE,
                metric_name="HealthyInstances", dimensions={"Stack": self.stack}, statistic="Minimum", period=60,
                evaluation_periods=1, threshold=threshold, comparison_operator="LessThanThreshold",
                treat_missing_data=missing, alarm_actions=topic, ok_actions=topic, alarm_description=description,
                tags=self.args.tags, opts=self._child)
        # No health data for 3 minutes means failover itself is broken: as loud as an outage.
        aws.cloudwatch.MetricAlarm(
            f"{self.name}-silent", name=f"{self.stack}-nat-failover-silent", namespace=NAMESPACE,
            metric_name="HealthyInstances", dimensions={"Stack": self.stack}, statistic="SampleCount", period=60,
            evaluation_periods=3, threshold=1, comparison_operator="LessThanThreshold", treat_missing_data="breaching",
            alarm_actions=topic, alarm_description="the NAT failover Lambda stopped reporting", tags=self.args.tags,
            opts=self._child)
        aws.cloudwatch.MetricAlarm(
            f"{self.name}-failover-errors", name=f"{self.stack}-nat-failover-errors", namespace="AWS/Lambda",
            metric_name="Errors", dimensions={"FunctionName": function_name}, statistic="Sum", period=60,
            evaluation_periods=1, threshold=1, comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching", alarm_actions=topic, tags=self.args.tags, opts=self._child)
        return status

    def _rules(self, status_alarms: list[aws.cloudwatch.MetricAlarm]) -> None:
        """EventBridge: instance state changes and status alarms fail over at once; the schedule probes."""
        instance_ids = [instance.id for instance in self.instances.values()]
        patterns = {
            "state": pulumi.Output.all(*instance_ids).apply(lambda ids: json.dumps({
                "source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"],
                "detail": {"state": FAILING_STATES, "instance-id": sorted(ids)}})),
            "alarm": pulumi.Output.all(*[alarm.arn for alarm in status_alarms]).apply(lambda arns: json.dumps({
                "source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
                "resources": sorted(arns), "detail": {"state": {"value": ["ALARM"]}}})),
        }
        rules = {kind: aws.cloudwatch.EventRule(f"{self.name}-{kind}", name=f"{self.stack}-nat-{kind}",
                                                event_pattern=pattern, tags=self.args.tags, opts=self._child)
                 for kind, pattern in patterns.items()}
        rules["schedule"] = aws.cloudwatch.EventRule(f"{self.name}-schedule", name=f"{self.stack}-nat-schedule",
                                                     schedule_expression="rate(1 minute)", tags=self.args.tags,
                                                     opts=self._child)
        for kind, rule in rules.items():
            aws.cloudwatch.EventTarget(f"{self.name}-{kind}", rule=rule.name, arn=self.failover.arn,
                                       retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                                           maximum_event_age_in_seconds=60 if kind == "schedule" else 300,
                                           maximum_retry_attempts=0 if kind == "schedule" else 3),
                                       opts=self._child)
            aws.lambda_.Permission(f"{self.name}-{kind}", action="lambda:InvokeFunction",
                                   function=self.failover.name, principal="events.amazonaws.com",
                                   source_arn=rule.arn, opts=self._child)

    def outputs(self) -> dict[str, object]:
        """Stack outputs for ops engines (`invoke nat.status/rotate`)."""
        return {"natMode": self.mode,
                "natInstanceIds": {az: instance.id for az, instance in self.instances.items()},
                "natInstanceUrns": {az: instance.urn for az, instance in self.instances.items()},
                "natRouteTableIds": dict(self.args.private_route_table_ids),
                "natRouteHomes": self.homes,
                "natTopicArn": self.topic.arn if self.topic else None,
                "natFailoverFunction": self.failover.name if self.failover else None}
