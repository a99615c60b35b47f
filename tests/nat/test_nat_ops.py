"""`nat.status` / `nat.rotate` engines against moto server, with a fake `pulumi` on PATH that replaces instances."""
from __future__ import annotations

import boto3
import pytest
from rich.console import Console

from infra.lambdas.nat.health import DRAIN_TAG
from infra.ops.io.pulumi_cli import PulumiCLI, PulumiError
from infra.ops.lifecycle.phases import CorruptState
from infra.ops.nat.rotation import (
    NatError,
    RotationCheckpoint,
    RotationRequest,
    Topology,
    read_status,
    status_tables,
)
from tests.support.cli import invoke
from tests.support.nat_rotation import egress_intact, install_pulumi, instance_tags, rotation
from tests.support.nat_world import REGION, build


@pytest.fixture(autouse=True)
def _lean_moto(monkeypatch):
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.mark.parametrize("az_count", [2, 3])
def test_rotate_replaces_both_instances_without_an_egress_gap(aws, tmp_path, monkeypatch, az_count):
    world = build(az_count)
    fake = install_pulumi(world, tmp_path, monkeypatch)
    engine, lines = rotation(world, tmp_path)
    old = dict(world.instances)
    engine.run()
    ups = [call["argv"] for call in fake.ups()]
    assert [up[up.index("--replace") + 1].rsplit("-", 1)[1] for up in ups] == ["a", "b"]
    assert all("--target-dependents" in up and up[up.index("--target") + 1] == up[up.index("--replace") + 1]
               for up in ups)
    new = fake.outputs()["natInstanceIds"]
    assert set(new.values()).isdisjoint(old.values())
    homes = {az: world.tables[table] for az, table in world.by_az.items()}
    assert world.targets() == {world.by_az[az]: new[homes[az]] for az in world.by_az}
    assert engine.checkpoint.load() is None and engine.checkpoint.lock() is None
    assert any("complete" in line for line in lines)
    egress_intact(world)


def test_interrupted_rotation_resumes_from_its_checkpoint(aws, tmp_path, monkeypatch):
    world = build(3)
    fake = install_pulumi(world, tmp_path, monkeypatch, fail_on_up=1)
    a, b = world.instances["eu-west-1a"], world.instances["eu-west-1b"]
    engine, _ = rotation(world, tmp_path)
    with pytest.raises(PulumiError, match="progress is kept, rerun `invoke nat.rotate --env dev` to resume"):
        engine.run()
    saved = engine.checkpoint.load()
    assert (saved["phases"], saved["old"]) == (["eu-west-1a/drain"], a)  # A's replacement is the next step
    assert set(world.targets().values()) == {b}  # routes parked on the survivor while A is replaced
    assert instance_tags(world, a)[DRAIN_TAG].startswith("rotate;until=")
    resumed, lines = rotation(world, tmp_path)
    resumed.run()
    assert lines[0].startswith("resuming rotation of dev at eu-west-1a: replace")
    assert len(fake.ups()) == 3  # the failed one, then one per instance
    assert resumed.checkpoint.load() is None
    assert a not in world.targets().values() and b not in world.targets().values()


def test_abort_lifts_the_drain_and_forgets_the_checkpoint(aws, tmp_path, monkeypatch):
    world = build(2)
    install_pulumi(world, tmp_path, monkeypatch, fail_on_up=1)
    a, b = world.instances["eu-west-1a"], world.instances["eu-west-1b"]
    engine, _ = rotation(world, tmp_path)
    with pytest.raises(PulumiError):
        engine.run()
    aborted, lines = rotation(world, tmp_path)
    aborted.abort()
    assert DRAIN_TAG not in instance_tags(world, a) and aborted.checkpoint.load() is None
    assert set(world.targets().values()) == {b} and "eu-west-1a step replace" in lines[0]


def ssm_parameters() -> dict[str, str]:
    ssm = boto3.client("ssm", region_name=REGION)
    return {p["Name"]: p["Value"] for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path="/", Recursive=True) for p in page["Parameters"]}


def test_abort_with_nothing_to_abort_says_so_and_changes_nothing(aws, tmp_path, monkeypatch):
    world = build(2)
    install_pulumi(world, tmp_path, monkeypatch)
    tags = {az: instance_tags(world, instance) for az, instance in world.instances.items()}
    engine, lines = rotation(world, tmp_path)
    engine.abort()
    assert lines == ["nothing to abort: no rotation of dev is in progress (no checkpoint in SSM parameter "
                     "/eks-platform/dev/nat-rotation/checkpoint, no instance marked draining)"]
    assert ssm_parameters() == {}  # the lock it held meanwhile is gone too
    assert {az: instance_tags(world, instance) for az, instance in world.instances.items()} == tags


def test_abort_drops_a_checkpoint_no_run_can_read(aws, tmp_path, monkeypatch):
    """The refusal of an unreadable checkpoint names --abort as the way out: that way out works."""
    world = build(2)
    install_pulumi(world, tmp_path, monkeypatch)
    boto3.client("ssm", region_name=REGION).put_parameter(Name="/eks-platform/dev/nat-rotation/checkpoint",
                                                          Value="{half a checkpoint", Type="String")
    engine, lines = rotation(world, tmp_path)
    with pytest.raises(CorruptState, match="`invoke nat.rotate --env dev --abort` drops it"):
        engine.run()
    engine.abort()
    assert lines == ["rotation of dev abandoned (an unreadable checkpoint); drain lifted on no instance; failback is "
                     "up to the failover Lambda"]
    assert ssm_parameters() == {}


def test_rotate_without_the_pulumi_cli_starts_nothing(aws, tmp_path, monkeypatch):
    """Every replacement is a `pulumi up`: without the CLI no lock is taken, nothing drained, nothing saved."""
    world = build(2)
    install_pulumi(world, tmp_path, monkeypatch)
    engine, _ = rotation(world, tmp_path)
    engine.cli = PulumiCLI(stack="dev", executable="pulumi-not-installed")
    before = world.targets()
    with pytest.raises(PulumiError, match="`pulumi-not-installed` CLI not found on PATH"):
        engine.run()
    assert ssm_parameters() == {} and world.targets() == before
    assert all(DRAIN_TAG not in instance_tags(world, instance) for instance in world.instances.values())


def test_abort_takes_over_the_lock_of_a_holder_known_to_be_gone(aws, tmp_path, monkeypatch):
    """`--abort --take-over` is how an operator gives up a rotation whose process was killed: without --take-over
    the abort is refused naming the holder (it must not pull drain marks from under a live rotation)."""
    world = build(2)
    install_pulumi(world, tmp_path, monkeypatch, fail_on_up=1)
    gone, _ = rotation(world, tmp_path, holder="alice@laptop-a pid 11")
    with pytest.raises(PulumiError):
        gone.run()
    gone.checkpoint.acquire()  # alice reran, and that process was killed: its lock stays behind
    refused = invoke("nat.rotate", "--env", "dev", "--abort")
    assert refused.returncode == 1 and "by alice@laptop-a pid 11" in refused.stderr and "--take-over" in refused.stderr
    taken = invoke("nat.rotate", "--env", "dev", "--abort", "--take-over")
    assert taken.returncode == 0, taken.stderr
    assert "rotation of dev abandoned (eu-west-1a step replace); drain lifted on " in taken.stdout
    assert ssm_parameters() == {}


def test_dry_run_plans_without_changing_anything(aws, tmp_path, monkeypatch):
    world = build(3)
    fake = install_pulumi(world, tmp_path, monkeypatch)
    before = world.targets()
    engine, _ = rotation(world, tmp_path)
    plan = engine.plan()
    assert any(world.by_az["eu-west-1c"] in line and "eu-west-1b instance" in line for line in plan)
    assert any("--replace urn:pulumi:dev" in line for line in plan)
    assert world.targets() == before and fake.ups() == [] and engine.checkpoint.load() is None
    assert DRAIN_TAG not in instance_tags(world, world.instances["eu-west-1a"])


def test_the_engine_takes_its_settings_from_the_request(aws, tmp_path, monkeypatch):
    """A RotationRequest built without invoke: its timeout shapes the plan, its take_over the lock verdict."""
    world = build(2)
    install_pulumi(world, tmp_path, monkeypatch)
    engine, _ = rotation(world, tmp_path, timeout=120)
    assert engine.request == RotationRequest(env="dev", timeout=120)
    RotationCheckpoint(boto3.client("ssm", region_name=REGION), "dev", holder="alice@laptop-a pid 11").acquire()
    plan = engine.plan()
    assert "locked by alice@laptop-a pid 11" in plan[0] and plan[0].endswith("a rotation now would be refused")
    assert sum("wait up to 120s" in line for line in plan) == 2
    engine.request = RotationRequest(env="dev", timeout=120, take_over=True)
    assert engine.plan()[0].endswith("--take-over would take it over")


def test_rotation_refuses_when_the_survivor_is_unhealthy(aws, tmp_path, monkeypatch):
    world = build(2)
    fake = install_pulumi(world, tmp_path, monkeypatch)
    world.ec2.stop_instances(InstanceIds=[world.instances["eu-west-1b"]])
    before = world.targets()
    engine, _ = rotation(world, tmp_path)
    with pytest.raises(NatError, match="eu-west-1b is not healthy .*egress would stop"):
        engine.run()
    assert world.targets() == before and fake.ups() == []
    assert DRAIN_TAG not in instance_tags(world, world.instances["eu-west-1a"])


def test_replacement_that_never_gets_healthy_times_out_with_routes_parked(aws, tmp_path, monkeypatch):
    world = build(2)
    install_pulumi(world, tmp_path, monkeypatch, launch=False)  # the new instance never shows up
    ticks = iter(range(0, 10_000, 100))
    engine, lines = rotation(world, tmp_path, timeout=250, clock=lambda: next(ticks))
    with pytest.raises(NatError, match="no healthy replacement after 250s"):
        engine.run()
    assert sum("waiting for the replacement" in line for line in lines) == 2  # at t=100 and 200, gave up at 300
    assert engine.checkpoint.load()["phases"] == ["eu-west-1a/drain", "eu-west-1a/replace"]  # waiting is next
    assert set(world.targets().values()) == {world.instances["eu-west-1b"]}
    egress_intact(world)


def test_status_shows_where_each_table_points(aws, tmp_path, monkeypatch):
    world = build(3)
    install_pulumi(world, tmp_path, monkeypatch)
    world.ec2.replace_route(RouteTableId=world.by_az["eu-west-1a"], DestinationCidrBlock="0.0.0.0/0",
                            InstanceId=world.instances["eu-west-1b"])
    topology = Topology.from_outputs("dev", PulumiCLI(stack="dev").outputs())
    status = read_status(world.ec2, topology)
    rows = {row.az: row for row in status.tables}
    assert not rows["eu-west-1a"].at_home and rows["eu-west-1a"].target_az == "eu-west-1b"
    assert rows["eu-west-1b"].at_home and rows["eu-west-1c"].at_home
    assert [(row.az, row.state, row.checks) for row in status.instances] == [
        ("eu-west-1a", "running", "ok"), ("eu-west-1b", "running", "ok")]
    console = Console(record=True, width=200)
    for table in status_tables(status, "dev"):
        console.print(table)
    text = console.export_text()
    assert "no (failed over)" in text and world.by_az["eu-west-1c"] in text


@pytest.mark.parametrize(("outputs", "configured", "message"), [
    ({}, "dual-instance", r"^stack dev has no outputs; deploy it first \(`invoke up --env dev`\)$"),
    ({"natMode": "gateway"}, None, "nat.mode 'gateway'"),
    ({"clusterName": "eks-dev"}, "dual-instance", r"^stack dev is not deployed with NAT yet; run `invoke up --env dev`$"),
    ({"clusterName": "eks-dev"}, None, r"^stack dev is not deployed with NAT yet; run `invoke up --env dev`$"),
    ({"natMode": "gateway"}, "dual-instance",
     r"^stack dev is deployed with nat.mode 'gateway' but Pulumi.dev.yaml says dual-instance; run `invoke up --env dev`$"),
    ({"clusterName": "eks-dev"}, "gateway", r"^stack dev runs nat.mode 'gateway'; nat.status/rotate need dual-instance "
     r"\(set eks-platform:nat.mode: dual-instance in Pulumi.dev.yaml, then `invoke up --env dev`\)$"),
    ({"natMode": "none"}, "none", "runs nat.mode 'none'.*set eks-platform:nat.mode: dual-instance"),
])
def test_topology_refuses_stacks_without_nat_instances(outputs, configured, message):
    """The refusal asks for the step still missing: a deploy when the file already says dual-instance, else the
    setting."""
    with pytest.raises(NatError, match=message):
        Topology.from_outputs("dev", outputs, configured)


def test_tasks_reject_unknown_env_with_exit_2():
    result = invoke("nat.status", "--env", "staging")
    assert result.returncode == 2 and "staging" in result.stderr
    helped = invoke("nat.rotate", "--help")
    assert helped.returncode == 0 and "--dry-run" in helped.stdout
