"""A NAT rotation on the moto NAT world (tests/support/nat_world.py): the stack outputs Pulumi would report, a
fake `pulumi` whose `up --replace` replaces the instance, and the Rotation engine as one operator's machine builds
it (a request object, no invoke), with the egress invariant (every table points at a running instance) checked at
every line it reports."""
from __future__ import annotations

from pathlib import Path

import boto3

from infra.ops.io.pulumi_cli import PulumiCLI
from infra.ops.nat.rotation import Rotation, RotationCheckpoint, RotationRequest, Topology
from tests.support import fake_pulumi
from tests.support.nat_world import REGION, STACK, World


def outputs_of(world: World) -> dict:
    homes = {az: world.tables[table] for az, table in world.by_az.items()}
    return {"clusterName": STACK, "natMode": "dual-instance", "natRouteTableIds": dict(world.by_az),
            "natRouteHomes": homes, "natInstanceIds": dict(world.instances),
            "natInstanceUrns": {az: f"urn:pulumi:dev::eks-platform::eks-platform:nat:Nat$aws:ec2/instance:Instance::nat-{az[-1]}"
                                for az in world.instances}}


def install_pulumi(world: World, tmp_path: Path, monkeypatch, fail_on_up: int | None = None,
                   launch: bool = True) -> fake_pulumi.FakePulumi:
    """The fake `pulumi` first on PATH, serving the world's outputs; each `up --replace` replaces an instance
    (tests.support.nat_world.replace_on_up; with launch=False the new one never shows up)."""
    return fake_pulumi.install(tmp_path, monkeypatch, outputs_of(world), fail_on_up=fail_on_up,
                               on_up="tests.support.nat_world:replace_on_up", launch=launch)


def egress_intact(world: World) -> None:
    """Every table points at a running instance: new connections always have a way out (open flows through a moved
    table still break)."""
    running = {i["InstanceId"] for r in world.ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["running"]}])["Reservations"] for i in r["Instances"]}
    targets = world.targets()
    assert all(target in running for target in targets.values()), targets


def rotation(world: World, tmp_path: Path, holder: str = "operator@laptop pid 1", report=None, timeout: float = 900.0,
             **kwargs) -> tuple[Rotation, list[str]]:
    """A Rotation as one operator's machine builds it (a request object, no invoke); the checkpoint and lock live
    in moto's SSM."""
    lines: list[str] = []

    def record(line: str) -> None:
        lines.append(line)
        egress_intact(world)
        if report:
            report(line)

    cli = PulumiCLI(stack="dev")
    topology = Topology.from_outputs("dev", cli.outputs())
    checkpoint = RotationCheckpoint(boto3.client("ssm", region_name=REGION), "dev", holder=holder)
    return Rotation(RotationRequest(env="dev", timeout=timeout), topology, world.ec2, cli, checkpoint, report=record,
                    poll=0, sleep=lambda _: None, **kwargs), lines


def instance_tags(world: World, instance_id: str) -> dict:
    found = world.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return {t["Key"]: t["Value"] for t in found.get("Tags", [])}
