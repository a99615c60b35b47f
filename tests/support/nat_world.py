"""A NAT world in moto for handler tests, the drill and the bench: a VPC, one Auto Scaling group of one NAT
instance per NAT AZ (the launch template, tags and Elastic IP the stack declares), a probe route table per
NAT AZ, a private route table per AZ, and SNS -> SQS to read the notifications."""
from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field

import boto3
from botocore.awsrequest import AWSResponse

from infra.lambdas.nat.aws import Clients
from infra.lambdas.nat.checks import Observation
from infra.lambdas.nat.contract import AZ_TAG, LAUNCH_ACTION, LAUNCH_TRANSITION, STACK_TAG, STATE_CHANGE
from infra.lambdas.nat.health import NatInstance, Policy
from infra.lambdas.nat.routes import DEFAULT
from infra.lambdas.nat.runtime import Runtime, Settings

STACK = "eks-test"
REGION = "eu-west-1"
IMAGE = "ami-12c6146b"  # a moto default AMI; describing images would take moto ~20 s
HOOK = "nat-launch"


@dataclass
class World:
    ec2: object
    tables: dict[str, str]  # route table -> AZ of the NAT instance serving it
    instances: dict[str, str]  # NAT AZ -> instance ID as built (replacements: `current`)
    topic_arn: str
    queue_url: str
    sqs: object
    by_az: dict[str, str] = field(default_factory=dict)  # private AZ -> its route table
    groups: dict[str, str] = field(default_factory=dict)  # NAT AZ -> Auto Scaling group name
    addresses: dict[str, tuple[str, str]] = field(default_factory=dict)  # NAT AZ -> (allocation ID, public IP)
    probe_tables: dict[str, str] = field(default_factory=dict)  # NAT AZ -> probe subnet's route table
    vpc: str = ""

    def targets(self, tables: list[str] | None = None) -> dict[str, str | None]:
        """route table -> instance ID of its default route (None when missing)."""
        found = self.ec2.describe_route_tables(RouteTableIds=sorted(tables or self.tables))["RouteTables"]
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

    def event(self, az: str, state: str = "stopped", at: float | None = None, instance: str | None = None) -> dict:
        event = {"source": "aws.ec2", "detail-type": STATE_CHANGE,
                 "detail": {"instance-id": instance or self.instances[az], "state": state}}
        if at is not None:
            event["time"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        return event

    def launch_event(self, az: str, instance: str) -> dict:
        return {"source": "aws.autoscaling", "detail-type": LAUNCH_ACTION,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "detail": {"LifecycleActionToken": "87654321-4321-4321-4321-210987654321", "AutoScalingGroupName": self.groups[az],
                           "LifecycleHookName": HOOK, "EC2InstanceId": instance,
                           "LifecycleTransition": LAUNCH_TRANSITION}}

    def describe(self, instance: str) -> dict:
        return self.ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]

    def current(self, az: str) -> str:
        """The instance the AZ's group runs now."""
        groups = boto3.client("autoscaling", region_name=REGION).describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.groups[az]])["AutoScalingGroups"]
        return groups[0]["Instances"][0]["InstanceId"]

    def replace(self, az: str) -> str:
        """Terminate the AZ's instance the way a failed health check does; its group launches a replacement."""
        old = self.current(az)
        boto3.client("autoscaling", region_name=REGION).terminate_instance_in_auto_scaling_group(
            InstanceId=old, ShouldDecrementDesiredCapacity=False)
        new = self.current(az)
        assert new != old
        return new


def build(az_count: int, stack: str = STACK) -> World:
    """VPC with `az_count` private route tables; NAT groups in the first two AZs, each instance adopted (EIP,
    no source/dest check) and every route at its home, as the launch hook leaves a fresh deployment."""
    ec2 = boto3.client("ec2", region_name=REGION)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    azs = [f"{REGION}{letter}" for letter in "abc"[:az_count]]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    group_id = ec2.create_security_group(GroupName=f"{stack}-nat", VpcId=vpc, Description="NAT instances")["GroupId"]
    template = ec2.create_launch_template(LaunchTemplateName=f"{stack}-nat", LaunchTemplateData={
        "ImageId": IMAGE, "InstanceType": "t4g.nano", "SecurityGroupIds": [group_id]})["LaunchTemplate"]["LaunchTemplateId"]
    instances, groups, addresses, probe_tables = {}, {}, {}, {}
    for index, az in enumerate(azs[:2]):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{200 + index}.0/24", AvailabilityZone=az)["Subnet"]
        group = f"{stack}-nat-{az[-1]}"
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group, MinSize=1, MaxSize=1, DesiredCapacity=1, VPCZoneIdentifier=subnet["SubnetId"],
            LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
            Tags=[{"Key": key, "Value": value, "PropagateAtLaunch": True}
                  for key, value in ((STACK_TAG, stack), (AZ_TAG, az))])
        groups[az] = group
        instance = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])[
            "AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
        address = ec2.allocate_address(Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [
            {"Key": STACK_TAG, "Value": stack}]}])
        ec2.associate_address(AllocationId=address["AllocationId"], InstanceId=instance, AllowReassociation=True)
        ec2.modify_instance_attribute(InstanceId=instance, SourceDestCheck={"Value": False})
        instances[az], addresses[az] = instance, (address["AllocationId"], address["PublicIp"])
        probe = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.create_route(RouteTableId=probe, DestinationCidrBlock=DEFAULT, InstanceId=instance)
        probe_tables[az] = probe
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
    return World(ec2, tables, instances, topic, queue, sqs, by_az, groups, addresses, probe_tables, vpc)



def replace_on_up(argv: list[str], outputs: dict, launch: bool = True) -> dict:
    """`pulumi up --replace <urn>` of a NAT instance, played inside the fake `pulumi` (tests/support/fake_pulumi.py):
    what Pulumi (and the group's launch hook) would do. The replacement is launched in the old one's subnet with its
    tags and takes the AZ's EIP (unless `launch` is False: it never shows up), then the old one is terminated.
    Returns the outputs with the new instance."""
    urn = argv[argv.index("--replace") + 1]
    az = {u: a for a, u in outputs["natInstanceUrns"].items()}[urn]
    ec2 = boto3.client("ec2", region_name=REGION)
    old = ec2.describe_instances(InstanceIds=[outputs["natInstanceIds"][az]])["Reservations"][0]["Instances"][0]
    tags = [t for t in old["Tags"] if t["Key"] in (STACK_TAG, AZ_TAG)]
    if launch:
        new = ec2.run_instances(ImageId=IMAGE, MinCount=1, MaxCount=1, InstanceType="t4g.nano",
                                SubnetId=old["SubnetId"], TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])
        outputs["natInstanceIds"][az] = new["Instances"][0]["InstanceId"]
        # what the group's launch hook does (infra/lambdas/nat/launch.py): the AZ's EIP moves to the new instance
        for address in ec2.describe_addresses(Filters=[{"Name": "instance-id", "Values": [old["InstanceId"]]}])["Addresses"]:
            ec2.associate_address(AllocationId=address["AllocationId"], InstanceId=new["Instances"][0]["InstanceId"],
                                  AllowReassociation=True)
    ec2.terminate_instances(InstanceIds=[old["InstanceId"]])
    return outputs

@dataclass
class FakeClock:
    """Simulated time: `sleep` advances it instantly, so hysteresis minutes pass in milliseconds.

    `wait` stands in for the probe round's wait: it waits (in real time, for a result that is on its way)
    until every probe has answered or is parked for good (`parked`: instance IDs a StuckProbe holds), then,
    if any did not answer, lets the round's whole remaining time pass on the simulated clock."""

    now: float = field(default_factory=lambda: float(int(time.time())))
    parked: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += max(0.0, seconds)

    def wait(self, pending: dict[Future, str], timeout: float) -> set[Future]:
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            waiting = [future for future, instance in pending.items() if not future.done() and instance not in self.parked]
            if not waiting:
                break
            wait_futures(waiting, timeout=0.05)
        done = {future for future in pending if future.done()}
        if len(done) < len(pending):
            self.sleep(timeout)
        return done


@dataclass
class ScriptedProbe:
    """Probe outcomes per AZ, one per call (the last repeats); default: pass from the instance's own address.
    An outcome is True (pass), False (no target answered), None (the probe could not run) or a string
    (the source address the echo target saw, e.g. another instance's)."""

    script: dict[str, list] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def __call__(self, instance: NatInstance) -> Observation:
        outcomes = self.script.get(instance.az, [True])
        index = self.calls.get(instance.az, 0)
        self.calls[instance.az] = index + 1
        outcome = outcomes[min(index, len(outcomes) - 1)]
        if outcome is None:
            return Observation(None, detail="probe function error: Task timed out")
        if isinstance(outcome, str):
            return Observation(True, 12.5, "echo answered", source_ip=outcome)
        if outcome:
            return Observation(True, 12.5, "all targets answered", source_ip=instance.public_ip)
        return Observation(False, detail="scripted failure: no target answered")


@dataclass
class StuckProbe:
    """Never answers for `az` (until `release`), answers normally elsewhere: a hung probe invoke."""

    az: str
    clock: FakeClock
    gate: threading.Event = field(default_factory=threading.Event)
    calls: int = 0

    def __call__(self, instance: NatInstance) -> Observation:
        if instance.az != self.az:
            return Observation(True, 10.0, "ok", source_ip=instance.public_ip)
        self.calls += 1
        self.clock.parked.add(instance.id)
        self.gate.wait(60)
        return Observation(None, detail="released")

    def release(self) -> None:
        self.gate.set()


_CLIENTS: dict[str, Clients] = {}


def clients() -> Clients:
    """One set of logged, retrying clients per endpoint: building them costs ~1 s of model loading."""
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    if endpoint not in _CLIENTS:
        _CLIENTS[endpoint] = Clients.from_environment()
    return _CLIENTS[endpoint]


def settings(world: World, policy: Policy | None = None, window: float = 3.0, interval: float = 1.0,
             prove_path: bool = True) -> Settings:
    return Settings(stack=STACK, route_tables=dict(world.tables), topic_arn=world.topic_arn,
                    probe_tables=dict(world.probe_tables),
                    addresses={az: alloc for az, (alloc, _) in world.addresses.items()},
                    policy=policy or Policy(failure_threshold=2, failback_checks=5, failback_min_seconds=10),
                    interval=interval, window=window, prove_path=prove_path)


def runtime(world: World, probe=None, clock: FakeClock | None = None, policy: Policy | None = None,
            window: float = 3.0, interval: float = 1.0, fresh_clients: bool = False, prove_path: bool = True) -> Runtime:
    clock = clock or FakeClock()
    return Runtime(settings(world, policy, window, interval, prove_path),
                   Clients.from_environment() if fresh_clients else clients(), probe or ScriptedProbe(),
                   clock=clock, sleep=clock.sleep, wait=clock.wait)


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_):
        yield self.body


def ec2_error(code: str, status: int = 503, message: str = "injected") -> AWSResponse:
    """An EC2 error response as the wire would carry it, for `before-send` hooks."""
    body = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            f"<RequestID>r</RequestID></Response>").encode()
    return AWSResponse("https://ec2.injected", status, {}, _Raw(body))


def lifecycle_completions(made: Clients) -> list[dict]:
    """moto 5.2 lacks CompleteLifecycleAction: answer it at `before-call` (as AWS would) and record each call."""
    calls: list[dict] = []

    def complete(params, **_):
        calls.append(dict(params["body"]))  # the query-protocol body: Action, LifecycleHookName, ...
        return AWSResponse("https://autoscaling.injected", 200, {}, _Raw(b"")), {"ResponseMetadata": {
            "HTTPStatusCode": 200}}

    event = "before-call.auto-scaling.CompleteLifecycleAction"
    made.autoscaling.meta.events.unregister(event, unique_id="nat-world-complete-lifecycle")
    made.autoscaling.meta.events.register_first(event, complete, unique_id="nat-world-complete-lifecycle")
    return calls


SCHEDULE = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
