"""A NAT world in moto (VPC, private route tables, two tagged NAT instances, SNS->SQS) for handler tests and bench."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import boto3

from infra.lambdas.nat.aws import Clients
from infra.lambdas.nat.failover import ProbeResult, Runtime, Settings
from infra.lambdas.nat.health import AZ_TAG, STACK_TAG, NatInstance, Policy
from infra.lambdas.nat.routes import DEFAULT

STACK = "eks-test"
REGION = "eu-west-1"


@dataclass
class World:
    ec2: object
    tables: dict[str, str]  # route table -> AZ of the NAT instance serving it
    instances: dict[str, str]  # NAT AZ -> instance ID
    topic_arn: str
    queue_url: str
    sqs: object
    by_az: dict[str, str] = field(default_factory=dict)  # private AZ -> its route table

    def targets(self) -> dict[str, str | None]:
        """route table -> instance ID of its default route (None when missing)."""
        found = self.ec2.describe_route_tables(RouteTableIds=sorted(self.tables))["RouteTables"]
        result: dict[str, str | None] = {}
        for table in found:
            default = [route for route in table["Routes"] if route.get("DestinationCidrBlock") == DEFAULT]
            assert len(default) <= 1
            result[table["RouteTableId"]] = default[0].get("InstanceId") if default else None
        return result

    def notifications(self) -> list[dict]:
        messages = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                body = json.loads(message["Body"])
                messages.append({"subject": body.get("Subject"), "message": json.loads(body["Message"])})
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def event(self, az: str, state: str = "stopped") -> dict:
        return {"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification",
                "detail": {"instance-id": self.instances[az], "state": state}}


def build(az_count: int, stack: str = STACK) -> World:
    """VPC with `az_count` private route tables; NAT instances in the first two AZs, routes at their home."""
    ec2 = boto3.client("ec2", region_name=REGION)
    azs = [f"{REGION}{letter}" for letter in "abc"[:az_count]]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    image = "ami-12c6146b"  # a moto default AMI; describing images would take moto ~20 s
    instances: dict[str, str] = {}
    for index, az in enumerate(azs[:2]):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{200 + index}.0/24", AvailabilityZone=az)["Subnet"]
        instances[az] = ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, InstanceType="t4g.nano", SubnetId=subnet["SubnetId"],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                {"Key": STACK_TAG, "Value": stack}, {"Key": AZ_TAG, "Value": az}]}])["Instances"][0]["InstanceId"]
    tables: dict[str, str] = {}
    by_az: dict[str, str] = {}
    for index, az in enumerate(azs):
        table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        home = azs[index % 2]
        ec2.create_route(RouteTableId=table, DestinationCidrBlock=DEFAULT, InstanceId=instances[home])
        tables[table] = home
        by_az[az] = table
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name=f"{stack}-nat")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"{stack}-nat-notes")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return World(ec2, tables, instances, topic, queue, sqs, by_az)


@dataclass
class FakeClock:
    """Simulated time: `sleep` advances it instantly, so hysteresis minutes pass in milliseconds."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class ScriptedProbe:
    """Probe outcomes per AZ, one per call (the last repeats); default: pass."""

    script: dict[str, list[bool]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def __call__(self, instance: NatInstance) -> ProbeResult:
        outcomes = self.script.get(instance.az, [True])
        index = self.calls.get(instance.az, 0)
        self.calls[instance.az] = index + 1
        ok = outcomes[min(index, len(outcomes) - 1)]
        return ProbeResult(ok, 12.5 if ok else None, "" if ok else "scripted failure")


_CLIENTS: dict[str, Clients] = {}


def clients() -> Clients:
    """One set of logged, retrying clients per endpoint: building them costs ~1 s of model loading."""
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    if endpoint not in _CLIENTS:
        _CLIENTS[endpoint] = Clients.from_environment()
    return _CLIENTS[endpoint]


def runtime(world: World, probe=None, clock: FakeClock | None = None, policy: Policy | None = None,
            window: float = 3.0, interval: float = 1.0, fresh_clients: bool = False) -> Runtime:
    clock = clock or FakeClock()
    settings = Settings(stack=STACK, route_tables=dict(world.tables), probe_functions={}, topic_arn=world.topic_arn,
                        policy=policy or Policy(failure_threshold=2, failback_checks=5, failback_min_seconds=10),
                        interval=interval, window=window)
    return Runtime(settings, Clients.from_environment() if fresh_clients else clients(), probe or ScriptedProbe(), clock=clock, sleep=clock.sleep)


SCHEDULE = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
