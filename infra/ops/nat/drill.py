"""`invoke nat.drill`: a game-day drill that breaks one NAT instance for real and measures the failover.

Steps: check both instances are healthy and every table is at home (else refuse: nothing changed), make the
victim fail (stop it, with its Auto Scaling group's health replacement suspended, or blackhole it by swapping
its security groups for an empty one), wait until every route table that used it points elsewhere (the
failover Lambda's work), then until the survivor's own probe proves working egress from its Elastic IP,
restore everything (start it / put its groups back, delete the drill's group, resume the processes) and
print the timeline. Whatever happens after the fault (a timeout, Ctrl-C, an AWS error) the restore runs.
Routes come back to the victim only after it earns the failback hysteresis, as in any real recovery.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infra.lambdas.nat import routes as nat_routes
from infra.lambdas.nat.checks import Observation, verdict
from infra.lambdas.nat.health import NatInstance, Policy
from infra.ops.errors import Failed, Interrupted, Refused
from infra.ops.nat.rotation import Topology

FAULTS = ("stop", "blackhole")
SUSPENDED = ["HealthCheck", "ReplaceUnhealthy"]  # so the group does not replace a stopped victim mid-drill


class DrillRefused(Refused):
    """The drill's preconditions do not hold; nothing was changed."""


class DrillFailed(Failed):
    """The failover did not happen in time, or the restore failed; the message says what is left to do."""


@dataclass(frozen=True)
class DrillTarget:
    """The stack's NAT as its outputs name it: the topology, the NAT groups and the probe functions."""

    topology: Topology
    groups: dict[str, str]  # NAT AZ -> Auto Scaling group name
    probes: dict[str, str]  # NAT AZ -> probe function name

    @classmethod
    def from_outputs(cls, env: str, outputs: dict[str, Any], configured: str | None = None) -> DrillTarget:
        topology = Topology.from_outputs(env, outputs, configured)
        return cls(topology, dict(outputs.get("natGroupNames") or {}), dict(outputs.get("natProbeFunctions") or {}))


@dataclass
class Timeline:
    """Seconds since the fault, and what happened then."""

    events: list[tuple[float, str]] = field(default_factory=list)
    started: float = 0.0

    def mark(self, now: float, what: str) -> None:
        self.events.append((now - self.started, what))

    def seconds(self, prefix: str) -> float | None:
        return next((at for at, what in self.events if what.startswith(prefix)), None)

    def lines(self) -> list[str]:
        return [f"{at:+8.2f}s  {what}" for at, what in self.events]


@dataclass
class Drill:
    target: DrillTarget
    ec2: Any
    autoscaling: Any
    probe: Callable[[NatInstance], Observation]  # the survivor's probe (LambdaProbe in production)
    fault: str = "stop"
    az: str | None = None  # the victim's NAT AZ; default: the first
    policy: Policy = field(default_factory=Policy)
    timeout: float = 300.0
    poll: float = 1.0
    prove_path: bool = True
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    report: Callable[[str], None] = print
    timeline: Timeline = field(default_factory=Timeline)
    victim_az: str = field(init=False)  # `az`, or the first NAT AZ, once checked

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise DrillRefused(f"--fault {self.fault!r} is not a drill; use one of: {', '.join(FAULTS)}")
        azs = sorted(self.target.groups or set(self.target.topology.homes.values()))
        if self.az is None:
            self.az = azs[0] if azs else None
        if self.az not in azs:
            raise DrillRefused(f"--az {self.az!r} has no NAT instance; use one of: {', '.join(azs)}")
        self.victim_az = self.az

    @property
    def stack(self) -> str:
        return self.target.topology.stack

    def _instances(self) -> dict[str, NatInstance]:
        return nat_routes.read_instances(self.ec2, self.stack)

    def _pair(self) -> tuple[NatInstance, NatInstance, list[str]]:
        """(victim, survivor, tables using the victim), refusing unless both are healthy and tables are home."""
        instances = self._instances()
        victim = self._healthy("victim", nat_routes.home_instance(self.victim_az, instances))
        others = sorted({i.az for i in instances.values()} - {self.victim_az})
        survivor = self._healthy("survivor", nat_routes.home_instance(others[0], instances) if others else None)
        env = self.target.topology.env
        tables = nat_routes.read_tables(self.ec2, self.target.topology.table_homes, instances)
        # A table whose home AZ has no live instance (terminated, not yet replaced) is not at home either.
        away = sorted(t.id for t in tables.values()
                      if (home := nat_routes.home_instance(t.home_az, instances)) is None or t.target != home.id)
        if away:
            raise DrillRefused(f"route tables {', '.join(away)} are not at home (a failover or rotation is under way); "
                               f"wait until `invoke nat.status --env {env}` shows every table at home")
        return victim, survivor, sorted(t.id for t in tables.values() if t.target == victim.id)

    def _healthy(self, role: str, instance: NatInstance | None) -> NatInstance:
        if instance is None or not instance.usable(self.policy):
            raise DrillRefused(f"the drill's {role} is not a healthy NAT instance "
                               f"({instance.id + ' ' + instance.health.status(self.policy) if instance else 'none'}"
                               f"); fix it first, see `invoke nat.status --env {self.target.topology.env}`")
        return instance

    def plan(self) -> list[str]:
        """The steps `run` would take, for --dry-run; reads AWS, changes nothing."""
        victim, survivor, moving = self._pair()
        group = self.target.groups.get(self.victim_az, "?")
        fault = (f"suspend {', '.join(SUSPENDED)} on {group}; stop {victim.id}" if self.fault == "stop" else
                 f"swap the security groups of {victim.id} for an empty drill group (blackholes its egress)")
        return [f"fault: {fault}",
                f"measure: until {', '.join(moving) or 'no table'} point at {survivor.id} ({survivor.az}), "
                f"then until the {survivor.az} probe proves egress from {survivor.public_ip}; give up after "
                f"{self.timeout:.0f}s",
                "restore: " + (f"start {victim.id}, resume the processes on {group}" if self.fault == "stop" else
                               f"put back the groups of {victim.id}, delete the drill group"),
                f"then: routes return to {victim.id} after its failback hysteresis "
                f"({self.policy.failback_checks} passes over {self.policy.failback_min_seconds:.0f}s)"]

    def run(self) -> Timeline:
        victim, survivor, moving = self._pair()
        undo: list[Callable[[], None]] = []
        self.timeline = Timeline(started=self.clock())
        try:
            self._inject(victim, undo)
            self._await_routes(victim, survivor, moving)
            self._await_egress(survivor)
        except KeyboardInterrupt:
            self._restore(undo)
            raise Interrupted(f"drill interrupted; {victim.id} restored, routes return after failback") from None
        except BaseException:
            self._restore(undo)
            raise
        self._restore(undo)
        self.timeline.mark(self.clock(), f"{victim.id} back; routes return to it after failback "
                                         f"({self.policy.failback_checks} passes over "
                                         f"{self.policy.failback_min_seconds:.0f}s)")
        return self.timeline

    def _inject(self, victim: NatInstance, undo: list[Callable[[], None]]) -> None:
        if self.fault == "stop":
            group = self.target.groups.get(self.victim_az)
            if group:
                self.autoscaling.suspend_processes(AutoScalingGroupName=group, ScalingProcesses=SUSPENDED)
                undo.append(lambda: self.autoscaling.resume_processes(AutoScalingGroupName=group,
                                                                      ScalingProcesses=SUSPENDED))
            self.timeline.started = self.clock()
            self.ec2.stop_instances(InstanceIds=[victim.id])
            undo.append(lambda: self._start(victim.id))
            self.timeline.mark(self.clock(), f"fault: stopped {victim.id} ({victim.az})")
            return
        described = self.ec2.describe_instances(InstanceIds=[victim.id])["Reservations"][0]["Instances"][0]
        original = [group["GroupId"] for group in described.get("SecurityGroups", [])]
        drill = self.ec2.create_security_group(
            GroupName=f"{self.stack}-nat-drill-{int(time.time())}", VpcId=described["VpcId"],
            Description="eks-platform nat.drill: no ingress, no egress (deleted when the drill ends)")["GroupId"]
        undo.append(lambda: self.ec2.delete_security_group(GroupId=drill))
        self.ec2.revoke_security_group_egress(GroupId=drill, IpPermissions=[
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        self.timeline.started = self.clock()
        self.ec2.modify_instance_attribute(InstanceId=victim.id, Groups=[drill])
        undo.append(lambda: self.ec2.modify_instance_attribute(InstanceId=victim.id, Groups=original))
        self.timeline.mark(self.clock(), f"fault: {victim.id} ({victim.az}) blackholed (security groups "
                                         f"{', '.join(original) or 'none'} -> {drill})")

    def _start(self, instance_id: str) -> None:
        self.ec2.start_instances(InstanceIds=[instance_id])
        deadline = self.clock() + self.timeout
        while self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
                "State"]["Name"] != "running":
            if self.clock() >= deadline:
                raise DrillFailed(f"{instance_id} is not running {self.timeout:.0f}s after the drill started it; "
                                  f"start it by hand (aws ec2 start-instances --instance-ids {instance_id})")
            self.sleep(self.poll)

    def _await(self, done: Callable[[], str | None], waiting_for: str) -> None:
        deadline = self.timeline.started + self.timeout
        while True:
            what = done()
            if what:
                self.timeline.mark(self.clock(), what)
                self.report(f"{self.timeline.events[-1][0]:+.2f}s {what}")
                return
            if self.clock() >= deadline:
                raise DrillFailed(f"no {waiting_for} within {self.timeout:.0f}s of the fault; the failover did not "
                                  f"happen in time (check the failover Lambda's logs); everything is restored")
            self.sleep(self.poll)

    def _await_routes(self, victim: NatInstance, survivor: NatInstance, moving: list[str]) -> None:
        def moved() -> str | None:
            homes = {table: self.target.topology.table_homes[table] for table in moving}
            tables = nat_routes.read_tables(self.ec2, homes, {victim.id: victim, survivor.id: survivor})
            targets = [tables[table].target for table in moving if table in tables]  # a stale ID is not waited on
            if victim.id in targets or None in targets:
                return None
            return f"routes moved: {', '.join(moving)} -> {', '.join(sorted({t for t in targets if t is not None}))}"

        self._await(moved, "route move")

    def _await_egress(self, survivor: NatInstance) -> None:
        def egress() -> str | None:
            seen = self.probe(survivor)
            passed, _ = verdict(seen, survivor, self.prove_path)
            return f"first working egress via {survivor.id} (source {seen.source_ip or 'unproven'})" if passed else None

        self._await(egress, "working egress through the survivor")

    def _restore(self, undo: list[Callable[[], None]]) -> None:
        problems = []
        for step in reversed(undo):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - every restore step is tried; all failures are reported
                problems.append(f"{type(exc).__name__}: {exc}")
        if problems:
            raise DrillFailed(f"the drill could not restore everything ({'; '.join(problems)}); check "
                              f"`invoke nat.status --env {self.target.topology.env}` and fix it by hand")
        self.timeline.mark(self.clock(), "restored: " + ("victim started, processes resumed" if self.fault == "stop"
                                                         else "security groups back, drill group deleted"))
