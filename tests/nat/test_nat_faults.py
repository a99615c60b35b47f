"""NAT failover under AWS's own trouble (issue 16), table-driven, against moto server over HTTP.

Faults are injected through botocore's event hooks on the runtime's clients (`before-send` answering with an
AWS error response, as the wire would), never by branches in production code; time is a FakeClock, so
retries, hysteresis and deadlines pass in simulated seconds.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from infra.lambdas.nat.aws import DeadlineExceeded
from infra.lambdas.nat.checks import Observation
from infra.lambdas.nat.contract import DRAIN_TAG, HEALTH_TAG, NAMESPACE, Metric, drain_mark
from infra.lambdas.nat.failover import handle
from infra.lambdas.nat.health import Health, NatInstance, Policy
from infra.ops.nat.drill import Drill, DrillRefused, DrillTarget
from tests.support import nat_world
from tests.support.cli import invoke
from tests.support.nat_world import (
    REGION,
    SCHEDULE,
    STACK,
    FakeClock,
    ScriptedProbe,
    StuckProbe,
    build,
    lifecycle_completions,
    runtime,
)

POLICY = Policy(failure_threshold=2, failback_checks=5, failback_min_seconds=10, unknown_limit=3)


@pytest.fixture(autouse=True)
def _lean_moto(monkeypatch):
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_):
        yield self.body


@dataclass
class Fault:
    """Answers an operation with an AWS error: after `skip` good attempts, for `times` attempts, only for requests
    whose body mentions `match` (e.g. one route table)."""

    client: str  # the Clients attribute: ec2, sns, autoscaling, cloudwatch
    operation: str
    code: str
    times: int = 10**9
    skip: int = 0
    match: str | None = None
    seen: int = field(default=0, init=False)
    answered: int = field(default=0, init=False)

    def __call__(self, request, **_):
        body = request.body or b""
        text = body.decode() if isinstance(body, bytes) else str(body)
        if self.match and self.match not in text:
            return None
        self.seen += 1
        if self.seen <= self.skip or self.answered >= self.times:
            return None
        self.answered += 1
        if self.client == "ec2":
            xml = (f"<Response><Errors><Error><Code>{self.code}</Code><Message>injected</Message></Error></Errors>"
                   f"<RequestID>r</RequestID></Response>")
            return AWSResponse(request.url, 503 if self.code == "RequestLimitExceeded" else 400, {}, _Raw(xml.encode()))
        if self.client == "cloudwatch":  # the Lambda's CloudWatch client speaks JSON (awsQueryCompatible)
            body = json.dumps({"__type": self.code, "message": "injected"}).encode()
            return AWSResponse(request.url, 400, {"x-amzn-query-error": f"{self.code};Sender"}, _Raw(body))
        xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{self.code}</Code><Message>injected</Message></Error>"
               f"<RequestId>r</RequestId></ErrorResponse>")
        return AWSResponse(request.url, 400, {}, _Raw(xml.encode()))


@pytest.fixture
def inject():
    """Registers faults on a runtime's (cached, shared) clients and removes them after the test."""
    registered = []

    def add(made, fault: Fault) -> Fault:
        client = getattr(made, fault.client)
        event = f"before-send.{client.meta.service_model.service_id.hyphenize()}.{fault.operation}"
        unique = f"fault-{id(fault)}"
        client.meta.events.register_first(event, fault, unique_id=unique)
        registered.append((client, event, unique))
        return fault

    yield add
    for client, event, unique in registered:
        client.meta.events.unregister(event, unique_id=unique)


def log_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def metric_sum(name: str, az: str | None = None) -> float:
    dimensions = [{"Name": "Stack", "Value": STACK}] + ([{"Name": "AZ", "Value": az}] if az else [])
    now = time.time()
    points = boto3.client("cloudwatch", region_name=REGION).get_metric_statistics(
        Namespace=NAMESPACE, MetricName=name, Dimensions=dimensions, StartTime=now - 86400 * 365,
        EndTime=now + 86400 * 365, Period=60, Statistics=["Sum"])["Datapoints"]
    return sum(point["Sum"] for point in points)


def health_of(world, instance: str) -> Health:
    tags = {tag["Key"]: tag["Value"] for tag in world.describe(instance).get("Tags", [])}
    record, problem = Health.parse(tags.get(HEALTH_TAG), instance, float("inf"))
    assert problem is None, problem
    return record


def homes_of(world, az: str) -> list[str]:
    return sorted(table for table, home in world.tables.items() if home == az)


# -- 1. any AWS error ended the invocation --------------------------------------------------------------------

@pytest.mark.parametrize(("az_count", "times", "status"), [
    (2, 5, "handled"),  # one call's five attempts throttled: the next attempt of the move succeeds
    (3, 5, "handled"),
    (3, 10**9, "incomplete"),  # throttled for good: reported, the others moved, the deadline kept
])
def test_a_throttled_route_move_fails_alone_and_is_retried_within_the_deadline(aws, inject, az_count, times, status):
    world = build(az_count)
    a, b = world.instances["eu-west-1a"], world.instances["eu-west-1b"]
    stuck = world.by_az["eu-west-1a"]
    world.ec2.stop_instances(InstanceIds=[a])
    rt = runtime(world)
    fault = inject(rt.clients, Fault("ec2", "ReplaceRoute", "RequestLimitExceeded", times=times, match=stuck))
    started = rt.clock()
    result = handle(world.event("eu-west-1a"), rt, remaining_seconds=60)
    targets = world.targets()
    assert all(targets[table] == b for table in homes_of(world, "eu-west-1a") if table != stuck)
    assert result["status"] == status and (targets[stuck] == b) == (status == "handled")
    assert fault.answered >= 5 and {"what": f"move {stuck} to {b}", "error": "RequestLimitExceeded"} in result["errors"]
    assert rt.clock() - started <= 60  # on the simulated clock: never past the Lambda's remaining time
    moved = {note["message"]["table"] for note in world.notifications() if "table" in note["message"]}
    assert moved == {move["table"] for move in result["moves"]}
    assert metric_sum(Metric.AWS_ERRORS) >= 1 and metric_sum(Metric.FAILOVERS) == len(result["moves"])


def test_retries_stop_at_the_deadline_and_no_call_starts_after_it(aws, inject):
    world = build(2)
    clock = FakeClock()
    rt = runtime(world, clock=clock)
    fault = inject(rt.clients, Fault("ec2", "DescribeRouteTables", "RequestLimitExceeded"))
    started = clock.now
    with rt.deadline(started + 0.6):
        with pytest.raises(ClientError, match="RequestLimitExceeded"):
            rt.clients.ec2.describe_route_tables()
        assert clock.now - started <= 0.6  # botocore alone would back off ~6 s over its 5 attempts
        clock.sleep(1)
        with pytest.raises(DeadlineExceeded):
            rt.clients.ec2.describe_instances()
    assert 1 <= fault.answered < 5


@pytest.mark.parametrize("remaining", [12, 30])
def test_the_scheduled_invocation_cannot_outlive_its_timeout_when_aws_keeps_failing(aws, inject, remaining):
    world = build(3)
    rt = runtime(world, window=55)
    for operation in ("DescribeInstances", "DescribeRouteTables", "CreateTags"):
        inject(rt.clients, Fault("ec2", operation, "RequestLimitExceeded"))
    started = rt.clock()
    result = handle(SCHEDULE, rt, remaining_seconds=remaining)
    assert rt.clock() - started <= remaining and result["status"] == "checked"
    assert {error["what"] for error in result["errors"]} >= {"describe NAT instances", "describe route tables"}


@pytest.mark.parametrize("az_count", [2, 3])
def test_throttled_describe_instances_leaves_rounds_blind_but_a_later_failure_is_still_found(aws, inject, az_count):
    world = build(az_count)
    b = world.instances["eu-west-1b"]
    rt = runtime(world, probe=ScriptedProbe({"eu-west-1a": [True] * 3 + [False]}), window=20)
    inject(rt.clients, Fault("ec2", "DescribeInstances", "RequestLimitExceeded", skip=1))  # every round after the first
    result = handle(SCHEDULE, rt)
    assert [move["reason"] for move in result["moves"]] == ["failover"] * len(homes_of(world, "eu-west-1a"))
    assert set(world.targets().values()) == {b}
    assert result["rounds"] >= 5 and {"what": "describe NAT instances", "error": "RequestLimitExceeded"} in result["errors"]


@pytest.mark.parametrize(("client", "operation", "code"), [
    ("sns", "Publish", "Throttling"),
    ("ec2", "CreateTags", "RequestLimitExceeded"),
    ("cloudwatch", "PutMetricData", "Throttling"),
])
def test_failed_notices_tags_and_metrics_never_stop_a_move(aws, inject, capsys, client, operation, code):
    world = build(3)
    a, b = world.instances["eu-west-1a"], world.instances["eu-west-1b"]
    world.ec2.stop_instances(InstanceIds=[a])
    rt = runtime(world)
    inject(rt.clients, Fault(client, operation, code))
    result = handle(world.event("eu-west-1a"), rt)
    assert result["status"] == "handled" and set(world.targets().values()) == {b}
    assert len(result["moves"]) == 2 and any(error["error"] == code for error in result["errors"])
    assert metric_sum(Metric.FAILOVERS) == (0 if client == "cloudwatch" else 2)  # other failures still publish
    assert any(line["event"] == "aws_failed" and line["error"] == code for line in log_lines(capsys))


@pytest.mark.parametrize("az_count", [2, 3])
def test_an_invalid_route_table_id_is_reported_and_skipped(aws, capsys, az_count):
    world = build(az_count)
    a, b = world.instances["eu-west-1a"], world.instances["eu-west-1b"]
    world.tables["rtb-0000000000deadbee"] = "eu-west-1a"  # a table deleted behind the stack's back
    world.ec2.stop_instances(InstanceIds=[a])
    result = handle(world.event("eu-west-1a"), runtime(world))
    world.tables.pop("rtb-0000000000deadbee")
    assert result["status"] == "handled" and set(world.targets().values()) == {b}
    assert {"what": "route table rtb-0000000000deadbee", "error": "NotFound"} in result["errors"]
    missing = [line for line in log_lines(capsys) if line["event"] == "route_table_missing"]
    assert len(missing) == 1 and missing[0]["level"] == "error"


# -- 2. stale events were trusted -----------------------------------------------------------------------------

@pytest.mark.parametrize(("event_offset", "why"), [
    (-3600, "older than the instance's launch"),  # a retried event from before this instance ran
    (+5, "the instance is running now"),  # a stop that was undone: it runs again
])
@pytest.mark.parametrize("az_count", [2, 3])
def test_a_stale_stopped_event_fails_nothing_over(aws, capsys, az_count, event_offset, why):
    world = build(az_count)
    a = world.instances["eu-west-1a"]
    world.ec2.stop_instances(InstanceIds=[a])
    world.ec2.start_instances(InstanceIds=[a])
    launched = world.describe(a)["LaunchTime"].timestamp()
    before = world.targets()
    result = handle(world.event("eu-west-1a", "stopped", at=launched + event_offset), runtime(world))
    assert result["status"] == "stale" and why in result["why"]
    assert world.targets() == before and health_of(world, a).fail == 0
    assert any(line["event"] == "event_stale" for line in log_lines(capsys))


# -- 3. an interrupted rotation could take egress down --------------------------------------------------------

@pytest.mark.parametrize(("mark_offset", "last_resort"), [(600, True), (-1, False)])
@pytest.mark.parametrize("az_count", [2, 3])
def test_a_draining_instance_is_the_last_resort_and_its_mark_expires(aws, az_count, mark_offset, last_resort):
    world = build(az_count)
    a, b = world.instances["eu-west-1a"], world.instances["eu-west-1b"]
    clock = FakeClock()
    world.ec2.create_tags(Resources=[b], Tags=[{"Key": DRAIN_TAG, "Value": drain_mark(clock.now + mark_offset)}])
    world.ec2.stop_instances(InstanceIds=[a])
    result = handle(world.event("eu-west-1a"), runtime(world, clock=clock))
    assert result["status"] == "handled" and set(world.targets().values()) == {b}  # never left without egress
    subjects = [note["subject"] for note in world.notifications()]
    assert any("only draining instances left" in subject for subject in subjects) == last_resort


def test_a_draining_instance_gives_its_tables_away_while_another_is_usable(aws):
    world = build(3)
    a, b = world.instances["eu-west-1a"], world.instances["eu-west-1b"]
    clock = FakeClock()
    world.ec2.create_tags(Resources=[b], Tags=[{"Key": DRAIN_TAG, "Value": drain_mark(clock.now + 600)}])
    result = handle(SCHEDULE, runtime(world, clock=clock, window=1))
    assert [move["table"] for move in result["moves"]] == homes_of(world, "eu-west-1b")
    assert set(world.targets().values()) == {a}


# -- 4. probe rounds had no deadline, erroring probes were only logged ----------------------------------------

@pytest.mark.parametrize("az_count", [2, 3])
def test_a_stuck_probe_keeps_rounds_on_time_is_counted_and_ends_in_failover(aws, az_count):
    world = build(az_count)
    a, b = world.instances["eu-west-1a"], world.instances["eu-west-1b"]
    clock = FakeClock()
    probe = StuckProbe("eu-west-1a", clock)
    rt = runtime(world, probe=probe, clock=clock, policy=POLICY, window=20)
    started = clock.now
    try:
        result = handle(SCHEDULE, rt, remaining_seconds=30)
    finally:
        probe.release()
    assert probe.calls == 1  # one hung invoke in flight, never a pile of them
    assert clock.now - started <= 30  # the invocation ended before its timeout
    assert [move["reason"] for move in result["moves"]] == ["failover"] * len(homes_of(world, "eu-west-1a"))
    assert set(world.targets().values()) == {b} and health_of(world, a).is_down(POLICY)
    assert metric_sum(Metric.PROBE_UNKNOWN, "eu-west-1a") > POLICY.unknown_limit


@pytest.mark.parametrize(("outcomes", "prove_path", "moves", "metric"), [
    ([None], True, "failover", Metric.PROBE_UNKNOWN),  # the probe function always errs: unknown, then down
    (["203.0.113.9"], True, "failover", Metric.PROBE_FAILURES),  # egress left from some other address
    ([""], True, "failover", Metric.PROBE_UNKNOWN),  # targets answered, the echo did not: path unproven
    ([""], False, None, None),  # TCP-only mode: reachability is enough
])
def test_probes_must_prove_their_path(aws, outcomes, prove_path, moves, metric):
    world = build(3)
    rt = runtime(world, probe=ScriptedProbe({"eu-west-1a": outcomes}), policy=POLICY, window=12,
                 prove_path=prove_path)
    result = handle(SCHEDULE, rt)
    expected = [moves] * len(homes_of(world, "eu-west-1a")) if moves else []
    assert [move["reason"] for move in result["moves"]] == expected
    if metric:
        assert metric_sum(metric, "eu-west-1a") >= 2
    else:
        assert metric_sum(Metric.PROBE_UNKNOWN, "eu-west-1a") == 0


# -- 5. health state was trusted blindly ----------------------------------------------------------------------

GARBAGE = [
    ("ok=0;fail=-5;since=0", "streak out of range"),  # a negative streak would block failover
    ("ok=abc;fail=0", "not a number"),
    ("id={other};ok=0;fail=1;since=0", "belongs to"),
    ("ok=5;fail=3;since=1", "passes and failures at once"),
    ("ok=1;fail=0;since=99999999999", "not a past epoch second"),
    ("something else", "unreadable field"),
]


@pytest.mark.parametrize(("tag", "problem"), GARBAGE)
def test_a_corrupted_health_tag_is_reset_and_cannot_block_failover(aws, capsys, tag, problem):
    world = build(3)
    a, b = world.instances["eu-west-1a"], world.instances["eu-west-1b"]
    world.ec2.create_tags(Resources=[a], Tags=[{"Key": HEALTH_TAG, "Value": tag.format(other=b)}])
    result = handle(SCHEDULE, runtime(world, probe=ScriptedProbe({"eu-west-1a": [False]}), window=3))
    assert [move["reason"] for move in result["moves"]] == ["failover", "failover"]
    resets = [line for line in log_lines(capsys) if line["event"] == "health_reset"]
    assert resets and resets[0]["instance"] == a and problem in resets[0]["problem"] and resets[0]["level"] == "warning"
    assert health_of(world, a).instance == a and health_of(world, a).is_down(POLICY)


@pytest.mark.parametrize("tag", ["id={other};ok=999;fail=0;since=1", "ok=999;fail=0;since={future}"])
def test_a_corrupted_streak_earns_no_failback(aws, tag):
    world = build(3)
    a, b = world.instances["eu-west-1a"], world.instances["eu-west-1b"]
    clock = FakeClock()
    for table in homes_of(world, "eu-west-1a"):
        world.ec2.replace_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", InstanceId=b)
    world.ec2.create_tags(Resources=[a], Tags=[{"Key": HEALTH_TAG, "Value": tag.format(
        other=b, future=int(clock.now + 86400))}])
    result = handle(SCHEDULE, runtime(world, clock=clock, policy=POLICY, window=4))
    assert result["moves"] == [] and set(world.targets().values()) == {b}
    assert health_of(world, a).ok == 4  # counted from scratch, for this instance


# -- 6. nothing replaced a dead instance ----------------------------------------------------------------------

@pytest.mark.parametrize("az_count", [2, 3])
def test_a_replacement_is_adopted_inherits_no_streak_and_earns_its_failback(aws, az_count):
    world = build(az_count)
    old, b = world.instances["eu-west-1a"], world.instances["eu-west-1b"]
    clock = FakeClock()
    rt = runtime(world, clock=clock, policy=POLICY, window=15)
    completions = lifecycle_completions(rt.clients)
    handle(SCHEDULE, rt)
    assert health_of(world, old).earned_failback(POLICY, clock.now)
    new = world.replace("eu-west-1a")  # its group replaces the dead instance
    handle(world.event("eu-west-1a", "terminated", instance=old), rt)
    assert set(world.targets().values()) == {b}
    adopted = handle(world.launch_event("eu-west-1a", new), rt)
    assert adopted["status"] == "adopted"
    described = world.describe(new)
    assert described["PublicIpAddress"] == world.addresses["eu-west-1a"][1]  # the AZ's EIP followed
    assert described.get("SourceDestCheck") is False
    assert completions[-1]["LifecycleActionResult"] == "CONTINUE"
    assert completions[-1]["InstanceId"] == new and completions[-1]["LifecycleHookName"] == nat_world.HOOK
    assert health_of(world, new) == Health(instance=new)  # no streak from its predecessor
    assert world.targets([world.probe_tables["eu-west-1a"]])[world.probe_tables["eu-west-1a"]] == new
    assert set(world.targets().values()) == {b}  # unproven: the tables stay on the survivor
    early = handle(SCHEDULE, runtime(world, clock=clock, policy=POLICY, window=4))
    assert early["moves"] == []
    later = handle(SCHEDULE, runtime(world, clock=clock, policy=POLICY, window=20))
    assert {move["table"] for move in later["moves"] if move["reason"] == "failback"} == set(homes_of(world, "eu-west-1a"))
    assert all(world.targets()[table] == new for table in homes_of(world, "eu-west-1a"))


def test_a_replacement_that_cannot_get_its_address_is_abandoned(aws, inject):
    world = build(2)
    rt = runtime(world)
    completions = lifecycle_completions(rt.clients)
    new = world.replace("eu-west-1a")
    inject(rt.clients, Fault("ec2", "AssociateAddress", "UnauthorizedOperation"))
    result = handle(world.launch_event("eu-west-1a", new), rt)
    assert result["status"] == "abandoned" and completions[-1]["LifecycleActionResult"] == "ABANDON"
    assert new not in world.targets().values() and "PublicIpAddress" not in world.describe(new)


def test_launch_events_of_foreign_groups_and_dead_instances_are_left_alone(aws):
    world = build(2)
    rt = runtime(world)
    completions = lifecycle_completions(rt.clients)
    event = world.launch_event("eu-west-1a", world.instances["eu-west-1a"])
    event["detail"]["AutoScalingGroupName"] = "someone-elses-group"
    assert handle(event, rt)["status"] == "ignored" and completions == []
    new = world.replace("eu-west-1a")
    world.ec2.terminate_instances(InstanceIds=[new])
    assert handle(world.launch_event("eu-west-1a", new), rt)["status"] == "stale" and completions == []


# -- both down, then one back; three AZs on two instances ----------------------------------------------------

@pytest.mark.parametrize("az_count", [2, 3])
def test_both_down_then_one_back(aws, az_count):
    world = build(az_count)
    a, b = world.instances["eu-west-1a"], world.instances["eu-west-1b"]
    clock = FakeClock()
    world.ec2.stop_instances(InstanceIds=[a, b])
    before = world.targets()
    for az in ("eu-west-1a", "eu-west-1b"):
        assert handle(world.event(az), runtime(world, clock=clock))["moves"] == []
    assert world.targets() == before
    assert sum("DOWN" in note["subject"] for note in world.notifications()) == 2
    world.ec2.start_instances(InstanceIds=[b])
    back = handle(SCHEDULE, runtime(world, clock=clock, policy=POLICY, window=2))
    assert sorted(move["table"] for move in back["moves"]) == homes_of(world, "eu-west-1a")
    assert set(world.targets().values()) == {b}
    world.ec2.start_instances(InstanceIds=[a])
    home = handle(SCHEDULE, runtime(world, clock=clock, policy=POLICY, window=20))
    assert {move["table"] for move in home["moves"]} == set(homes_of(world, "eu-west-1a"))
    assert world.targets() == before


# -- 7. the drill ---------------------------------------------------------------------------------------------

@dataclass
class WorldProbe:
    """Egress as the world has it: the instance runs, holds an address, and its groups are not the drill's."""

    world: nat_world.World

    def __call__(self, instance: NatInstance) -> Observation:
        found = self.world.describe(instance.id)
        blackholed = any("nat-drill" in group["GroupName"] for group in found.get("SecurityGroups", []))
        if found["State"]["Name"] != "running" or blackholed:
            return Observation(False, detail="no target answered")
        return Observation(True, 20.0, "ok", source_ip=found.get("PublicIpAddress"))


def drill_outputs(world) -> dict:
    return {"clusterName": STACK, "natMode": "dual-instance", "natRouteTableIds": dict(world.by_az),
            "natRouteHomes": {az: world.tables[table] for az, table in world.by_az.items()},
            "natInstanceUrns": {az: f"urn:{az}" for az in world.groups}, "natGroupNames": dict(world.groups),
            "natProbeFunctions": {az: f"{STACK}-nat-probe-{az[-1]}" for az in world.groups}}


def run_drill(world, fault: str):
    """The drill against the world, with the failover Lambda played by the tick: EventBridge delivers the state
    change of a stopped instance, and the schedule probes once a second."""
    clock = FakeClock()
    rt = runtime(world, probe=WorldProbe(world), clock=clock, window=1)
    delivered: set[str] = set()
    lines: list[str] = []

    def tick(seconds: float) -> None:
        clock.sleep(seconds)
        for az, instance in world.instances.items():
            if world.describe(instance)["State"]["Name"] == "stopped" and instance not in delivered:
                delivered.add(instance)
                handle(world.event(az, "stopped", at=clock.now), rt)
        handle(SCHEDULE, rt)

    drill = Drill(DrillTarget.from_outputs("dev", drill_outputs(world)), world.ec2,
                  boto3.client("autoscaling", region_name=REGION), WorldProbe(world), fault=fault, policy=POLICY,
                  timeout=120, poll=0.5, clock=clock, sleep=tick, report=lines.append)
    return drill, drill.run(), lines


@pytest.mark.parametrize("fault", ["stop", "blackhole"])
def test_the_drill_measures_the_failover_restores_everything_and_prints_the_timeline(aws, capsys, fault):
    world = build(3)
    a, b = world.instances["eu-west-1a"], world.instances["eu-west-1b"]
    groups_before = world.describe(a)["SecurityGroups"]
    drill, timeline, reported = run_drill(world, fault)
    capsys.readouterr()
    text = "\n".join(timeline.lines())
    print(f"NAT drill of dev ({fault} eu-west-1a), moto world:\n{text}")
    steps = [what.split(":")[0].split(" ")[0] for _, what in timeline.events]
    assert steps == ["fault", "routes", "first", "restored", a], text
    moved, egress = timeline.seconds("routes moved"), timeline.seconds("first working egress")
    assert 0 <= moved <= egress <= 120
    assert f"-> {b}" in text and f"via {b}" in text and len(reported) == 2
    assert world.describe(a)["State"]["Name"] == "running"
    assert world.describe(a)["SecurityGroups"] == groups_before
    assert not world.ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{STACK}-nat-drill-*"]}])[
        "SecurityGroups"]
    group = boto3.client("autoscaling", region_name=REGION).describe_auto_scaling_groups(
        AutoScalingGroupNames=[world.groups["eu-west-1a"]])["AutoScalingGroups"][0]
    assert group["SuspendedProcesses"] == []
    assert set(world.targets().values()) <= {a, b}


def test_the_drill_refuses_unless_everything_is_at_home_and_its_plan_changes_nothing(aws):
    world = build(3)
    b = world.instances["eu-west-1b"]
    target = DrillTarget.from_outputs("dev", drill_outputs(world))
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    drill = Drill(target, world.ec2, autoscaling, WorldProbe(world), fault="blackhole", policy=POLICY)
    before = world.targets()
    plan = drill.plan()
    assert plan[0].startswith("fault: swap the security groups") and world.targets() == before
    with pytest.raises(DrillRefused, match="--fault 'melt'"):
        Drill(target, world.ec2, autoscaling, WorldProbe(world), fault="melt")
    with pytest.raises(DrillRefused, match="--az 'eu-west-1c' has no NAT instance"):
        Drill(target, world.ec2, autoscaling, WorldProbe(world), az="eu-west-1c")
    world.ec2.replace_route(RouteTableId=world.by_az["eu-west-1a"], DestinationCidrBlock="0.0.0.0/0", InstanceId=b)
    with pytest.raises(DrillRefused, match="not at home"):
        drill.run()
    assert world.describe(world.instances["eu-west-1a"])["State"]["Name"] == "running"


def test_the_drill_refuses_a_table_whose_home_az_has_no_instance_left(aws):
    """A third NAT AZ whose instance is gone (terminated, not yet replaced): its table cannot be at home, and the
    drill says so in one line instead of failing on the missing instance."""
    world = build(3)
    outputs = drill_outputs(world)
    outputs["natRouteHomes"]["eu-west-1c"] = "eu-west-1c"
    drill = Drill(DrillTarget.from_outputs("dev", outputs), world.ec2, boto3.client("autoscaling", region_name=REGION),
                  WorldProbe(world), policy=POLICY)
    with pytest.raises(DrillRefused, match=f"route tables {world.by_az['eu-west-1c']} are not at home"):
        drill.plan()
    assert world.describe(world.instances["eu-west-1a"])["State"]["Name"] == "running"


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (["--help"], 0, "--dry-run"),
    (["--env", "dev", "--fault", "melt"], 2, "--fault 'melt' is not a drill; use one of: stop, blackhole"),
    (["--env", "dev", "--timeout", "3"], 2, "--timeout takes whole seconds from 10 to 86400"),
    (["--env", "staging"], 2, "staging"),
])
def test_the_drill_task_rejects_bad_input_in_one_line(args, code, fragment):
    result = invoke("nat.drill", *args)
    assert result.returncode == code, result.stderr
    assert fragment in (result.stdout if code == 0 else result.stderr)
    if code:
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_short_invocation_still_saves_its_streaks_in_the_reserve(aws):
    world = build(2)
    a = world.instances["eu-west-1a"]
    result = handle(SCHEDULE, runtime(world, window=55), remaining_seconds=12)
    assert result["errors"] == [] and health_of(world, a).ok == result["rounds"] >= 5
