"""`invoke nat.status` and `invoke nat.rotate`: where egress goes, and replacing NAT instances one at a time.

Rotation, per NAT AZ in turn: mark the instance draining (tag, so the failover Lambda neither fails
back to it nor away from the survivor), move every route table off it to the other instance, replace
it through Pulumi (`pulumi up --target <urn> --replace <urn> --target-dependents`, so its EIP, probe
route and event rule follow and Pulumi state never drifts), wait until the new instance runs and
passes EC2 status checks (and is not marked down by the Lambda), then move its home tables back one
at a time. At every moment each table points at a running instance, so new connections always have a way
out; but each route move breaks the flows established through the old instance (the new one has no
connection state and another public IP), as a failover does (docs/nat.md).

One rotation per stack at a time, from any machine: its lock and its progress are SSM parameters
(`RotationCheckpoint`, the phase runner's store, infra/ops/lifecycle/phases.py), so a second operator
is refused with the holder's name and an interrupted rotation resumes at its first unfinished step
("<AZ>/<step>") on whichever machine reruns it.
Route moves share infra/lambdas/nat/routes.py with the Lambda, so both follow the same rules.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import ValidationInfo, model_validator

from infra.config import StackConfig
from infra.lambdas.nat import routes as nat_routes
from infra.lambdas.nat.contract import DRAIN_TAG, drain_mark
from infra.lambdas.nat.health import NatInstance, Policy
from infra.ops.deploy.lock import identity
from infra.ops.errors import Failed
from infra.ops.io import aws
from infra.ops.io.pulumi_cli import PulumiCLI, PulumiError
from infra.ops.lifecycle.phases import (
    FINISHED,
    CorruptState,
    PhaseRunner,
    Progress,
    ResumeHint,
    State,
    Step,
    read_state,
)

# The drain mark expires on its own (`rotate;until=<epoch>`): an abandoned rotation cannot pin routes forever.
# It lasts the replacement wait plus an hour for `pulumi up`.
DRAIN_MARGIN_S = 3600.0
DUAL = "dual-instance"  # the one nat.mode with instances to show and rotate


class NatError(Failed):
    """The rotation cannot proceed safely; nothing further changed, the checkpoint says where it stopped."""


@dataclass(frozen=True)
class Topology:
    """What the stack declared (from its outputs): tables per AZ, which NAT AZ each belongs to, instance URNs."""

    env: str
    stack: str
    tables: dict[str, str]
    homes: dict[str, str]
    urns: dict[str, str]

    @classmethod
    def from_outputs(cls, env: str, outputs: dict[str, Any], configured: str | None = None) -> Topology:
        """The deployed NAT; `configured` is the stack file's nat.mode, so a refusal asks for the step still missing
        (a deploy, or the setting)."""
        up = f"`invoke up --env {env}`"
        if not outputs:
            raise NatError(f"stack {env} has no outputs; deploy it first ({up})")
        mode = outputs.get("natMode")
        if mode is None and configured in (DUAL, None):
            raise NatError(f"stack {env} is not deployed with NAT yet; run {up}")
        if mode not in (DUAL, None) and configured == DUAL:
            raise NatError(f"stack {env} is deployed with nat.mode {mode!r} but Pulumi.{env}.yaml says {DUAL}; run {up}")
        if mode != DUAL:
            raise NatError(f"stack {env} runs nat.mode {mode or configured!r}; nat.status/rotate need {DUAL} (set "
                           f"eks-platform:nat.mode: {DUAL} in Pulumi.{env}.yaml, then {up})")
        return cls(env=env, stack=outputs["clusterName"], tables=dict(outputs["natRouteTableIds"]),
                   homes=dict(outputs["natRouteHomes"]), urns=dict(outputs["natInstanceUrns"]))

    @property
    def table_homes(self) -> dict[str, str]:
        """route table ID -> NAT AZ serving it, the shape nat_routes reads."""
        return {table: self.homes[az] for az, table in self.tables.items()}


@dataclass(frozen=True)
class TableRow:
    az: str
    table: str
    home: str
    target: str | None
    target_az: str | None

    @property
    def at_home(self) -> bool:
        return self.target_az == self.home


@dataclass(frozen=True)
class InstanceRow:
    az: str
    id: str
    state: str
    checks: str
    health: str
    streak: str
    draining: bool


@dataclass(frozen=True)
class NatStatus:
    tables: list[TableRow]
    instances: list[InstanceRow]


def ec2_client(region: str | None = None) -> Any:
    return aws.client("ec2", region)


def ssm_client(region: str | None = None) -> Any:
    return aws.client("ssm", region)


def status_checks(ec2: Any, instance_ids: list[str]) -> dict[str, str]:
    """instance -> 'ok' when both EC2 status checks pass, else their worst value (or 'initializing')."""
    if not instance_ids:
        return {}
    found = ec2.describe_instance_status(InstanceIds=instance_ids, IncludeAllInstances=True)["InstanceStatuses"]
    result = {}
    for item in found:
        values = {item.get("InstanceStatus", {}).get("Status", "not-applicable"),
                  item.get("SystemStatus", {}).get("Status", "not-applicable")}
        result[item["InstanceId"]] = "ok" if values == {"ok"} else sorted(values - {"ok"})[0]
    return result


def read_status(ec2: Any, topology: Topology, policy: Policy | None = None) -> NatStatus:
    policy = policy or Policy()
    instances = nat_routes.read_instances(ec2, topology.stack)
    tables = nat_routes.read_tables(ec2, topology.table_homes, instances)
    checks = status_checks(ec2, [i.id for i in instances.values() if i.state == "running"])
    table_rows = []
    for az, table_id in sorted(topology.tables.items()):
        target = tables[table_id].target if table_id in tables else None
        table_rows.append(TableRow(az, table_id, topology.homes[az], target,
                                   instances[target].az if target in instances else None))
    instance_rows = [InstanceRow(i.az, i.id, i.state, checks.get(i.id, "-"), i.health.status(policy),
                                 f"ok {i.health.ok} / fail {i.health.fail}", i.draining)
                     for i in sorted(instances.values(), key=lambda item: (item.az, item.id))]
    return NatStatus(table_rows, instance_rows)


def status_tables(status: NatStatus, env: str) -> list[Any]:
    """rich tables: where each route table points, and each instance's health."""
    from rich.table import Table

    routes = Table(title=f"NAT routes in {env}")
    for column in ("AZ", "route table", "home NAT AZ", "points at", "at home"):
        routes.add_column(column)
    for row in status.tables:
        target = f"{row.target} ({row.target_az})" if row.target else "[red]NO ROUTE / blackhole[/red]"
        routes.add_row(row.az, row.table, row.home, target, "yes" if row.at_home else "[yellow]no (failed over)[/yellow]")
    instances = Table(title=f"NAT instances in {env}")
    for column in ("AZ", "instance", "state", "status checks", "health", "streak", "draining"):
        instances.add_column(column)
    for item in status.instances:
        color = {"healthy": "green", "down": "red", "suspect": "yellow"}.get(item.health, "white")
        instances.add_row(item.az, item.id, item.state, item.checks, f"[{color}]{item.health}[/{color}]", item.streak,
                          "yes" if item.draining else "")
    return [routes, instances]


class RotationState(Progress):
    """A rotation's checkpoint: the stack it rotates (and, per step, the instances it replaces)."""

    env: str

    @model_validator(mode="after")
    def _this_stack(self, info: ValidationInfo) -> RotationState:
        wanted = (info.context or {}).get("env")
        if wanted and self.env != wanted:
            raise ValueError(f"describes a rotation of {self.env}, not of {wanted}")
        return self


@dataclass
class RotationLock:
    """Who holds a stack's rotation lock and since when (the lock parameter's value)."""

    holder: str
    since: str

    def describe(self) -> str:
        return f"{self.holder} since {self.since}"


class RotationLocked(NatError):
    """Another rotation of the stack holds the lock; the message names it."""


@dataclass
class RotationCheckpoint:
    """A stack's rotation lock and progress in SSM Parameter Store, the same for every machine and CI.

    The lock is the parameter `/eks-platform/<env>/nat-rotation/lock`, created with Overwrite=False: SSM
    creates a parameter at most once, so of two operators starting together exactly one gets it and the
    other is refused, told who holds it. It is held while a rotation or abort runs and released at the
    end, whatever the outcome; a process killed outright leaves it behind, so it has no expiry (a NAT
    replacement can take many minutes) and is taken over only with --take-over, by an operator who knows
    that holder is gone (takeover overwrites: it is not meant to race). The progress is the parameter
    `.../checkpoint`, written only by the lock's holder, so an interrupted rotation resumes from any machine.
    """

    ssm: Any
    env: str
    holder: str = field(default_factory=identity)
    exists: bool = field(default=False, init=False)  # progress saved, as this process last loaded, saved or cleared it

    @property
    def prefix(self) -> str:
        return f"/eks-platform/{self.env}/nat-rotation"

    @property
    def where(self) -> str:
        """Where the progress lives, for messages."""
        return f"SSM parameter {self.prefix}/checkpoint"

    def _get(self, name: str) -> str | None:
        try:
            return self.ssm.get_parameter(Name=f"{self.prefix}/{name}")["Parameter"]["Value"]
        except self.ssm.exceptions.ParameterNotFound:
            return None

    def lock(self) -> RotationLock | None:
        """The current lock, None when no rotation holds it."""
        raw = self._get("lock")
        if raw is None:
            return None
        try:
            found = json.loads(raw)
            return RotationLock(str(found["holder"]), str(found["since"]))
        except (ValueError, KeyError, TypeError):
            return RotationLock(raw, "an unknown time")

    def acquire(self, take_over: bool = False) -> None:
        """Take the lock (atomic create); RotationLocked naming the holder, unless `take_over`."""
        since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        value = json.dumps({"holder": self.holder, "since": since})
        current = None
        for _ in range(3):  # a lock released between our create and our read is tried again
            try:
                self.ssm.put_parameter(Name=f"{self.prefix}/lock", Value=value, Type="String", Overwrite=False,
                                       Description="held while `invoke nat.rotate` runs; see infra/ops/nat/rotation.py")
                return
            except self.ssm.exceptions.ParameterAlreadyExists:
                current = self.lock()
            if current is not None:
                break
        if current is not None and current.holder == self.holder:  # our own create, retried after a lost answer
            return
        if not take_over:
            raise RotationLocked(
                f"a NAT rotation of {self.env} is in progress by {current.describe() if current else 'another run'} "
                f"(SSM parameter {self.prefix}/lock); wait for it to finish, or, if that process is gone, rerun "
                f"with --take-over")
        self.ssm.put_parameter(Name=f"{self.prefix}/lock", Value=value, Type="String", Overwrite=True)

    def release(self) -> None:
        """Drop the lock if it is still ours (a takeover may have replaced it)."""
        current = self.lock()
        if current is not None and current.holder == self.holder:
            try:
                self.ssm.delete_parameter(Name=f"{self.prefix}/lock")
            except self.ssm.exceptions.ParameterNotFound:
                pass

    @contextmanager
    def held(self, take_over: bool = False) -> Iterator[None]:
        self.acquire(take_over)
        try:
            yield
        finally:
            self.release()

    def load(self) -> dict[str, Any] | None:
        raw = self._get("checkpoint")
        self.exists = raw is not None
        if raw is None:
            return None
        return read_state(raw, RotationState, self.where, f"`invoke nat.rotate --env {self.env} --abort` drops it "
                          f"(and lifts drain marks) to start over", context={"env": self.env})

    def save(self, state: dict[str, Any]) -> None:
        """Replace the progress in one write: a reader sees the old state or the new one, never half of it."""
        self.ssm.put_parameter(Name=f"{self.prefix}/checkpoint", Value=json.dumps(state, sort_keys=True),
                               Type="String", Overwrite=True)
        self.exists = True

    def clear(self) -> None:
        try:
            self.ssm.delete_parameter(Name=f"{self.prefix}/checkpoint")
        except self.ssm.exceptions.ParameterNotFound:
            pass
        self.exists = False


@dataclass(frozen=True)
class RotationRequest:
    """One `nat.rotate` as data: what the CLI parsed (or a test wrote), handed to the engine."""

    env: str
    timeout: float = 900.0   # seconds to wait for each new instance to run and pass status checks
    take_over: bool = False  # take the lock from a holder known to be gone
    abort: bool = False
    dry_run: bool = False

    @property
    def resume_hint(self) -> ResumeHint:
        """A failed `pulumi up` leaves the instance half-replaced: say that a rerun resumes, when progress is saved."""
        return ResumeHint(kept=f"progress is kept, rerun `invoke nat.rotate --env {self.env}` to resume",
                          failures=(PulumiError,))


@dataclass
class Rotation:
    """Rolling replacement of both NAT instances, each table always on a running one (see module docstring)."""

    request: RotationRequest
    topology: Topology
    ec2: Any
    cli: PulumiCLI
    checkpoint: RotationCheckpoint
    report: Callable[[str], None] = print
    poll: float = 10.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    policy: Policy = field(default_factory=Policy)

    @property
    def order(self) -> list[str]:
        return sorted(self.topology.urns)

    @property
    def timeout(self) -> float:
        return self.request.timeout

    def runner(self) -> PhaseRunner:
        """Per NAT AZ in turn: drain, replace, wait, restore; each checkpointed as "<AZ>/<step>"."""
        steps = [Step(f"{az}/{name}", partial(run, az)) for az in self.order for name, run in (
            ("drain", self._drain), ("replace", self._replace), ("wait", self._wait), ("restore", self._restore))]
        return PhaseRunner(self.checkpoint, steps,
                           abandon=f"`invoke nat.rotate --env {self.topology.env} --abort` to start over")

    def _position(self, state: State) -> tuple[str, str]:
        """Where a saved rotation stands: (AZ, its next step), or (the last AZ, "done")."""
        finished = set(state.get(FINISHED, []))
        upcoming = next((step.name for step in self.runner().steps if step.name not in finished),
                        f"{self.order[-1]}/done")
        az, _, step = upcoming.partition("/")
        return az, step

    def plan(self) -> list[str]:
        """What `run` would do, for --dry-run; reads AWS, changes nothing."""
        instances = self._instances()
        tables = nat_routes.read_tables(self.ec2, self.topology.table_homes, instances)
        state, lock = self.checkpoint.load(), self.checkpoint.lock()
        lines = ["resume from {} step {} ({})".format(*self._position(state), self.checkpoint.where)] if state else []
        if lock:
            verdict = "--take-over would take it over" if self.request.take_over else "a rotation now would be refused"
            lines.insert(0, f"locked by {lock.describe()}: {verdict}")
        for az in self.order:
            if state and f"{az}/restore" in state[FINISHED]:
                continue
            current = self._current(instances, az)
            other = next(a for a in self.order if a != az)
            moving = sorted(t.id for t in tables.values() if current and t.target == current.id)
            lines += [f"{az}: tag {current.id if current else '?'} {DRAIN_TAG}=rotate;until=<now + "
                      f"{self.timeout + DRAIN_MARGIN_S:.0f}s>; move {', '.join(moving) or 'no tables'}"
                      f" to the {other} instance",
                      f"{az}: pulumi up --target {self.topology.urns[az]} --replace {self.topology.urns[az]} "
                      f"--target-dependents",
                      f"{az}: wait up to {self.timeout:.0f}s for the new instance to run and pass status checks",
                      f"{az}: move home tables {', '.join(sorted(t for t, home in self.topology.table_homes.items() if home == az))}"
                      f" back, one at a time"]
        return lines

    def run(self) -> None:
        """Rotate both instances under the stack's lock, resuming from the checkpoint when there is one. Every
        replacement is a `pulumi up`: without the CLI nothing starts (no lock, no drain, no checkpoint)."""
        self.cli.require()
        with self.request.resume_hint.around(self.checkpoint), self.checkpoint.held(self.request.take_over):
            self._run()

    def _run(self) -> None:
        state = self.checkpoint.load()
        if state:
            self.report("resuming rotation of {} at {}: {}".format(self.topology.env, *self._position(state)))
        self.runner().run(state or {"env": self.topology.env, FINISHED: []})
        self.report(f"rotation of {self.topology.env} complete: {', '.join(self.order)} replaced, routes at home")

    def abort(self) -> None:
        """Give up an interrupted rotation: lift drain marks and forget the checkpoint.

        Routes stay where they are (every table points at a running instance between steps); the
        failover Lambda moves them home once the instance earns its failback. Takes the lock first, so
        it never pulls the drain marks out from under a rotation that is still running.
        """
        with self.request.resume_hint.around(self.checkpoint), self.checkpoint.held(self.request.take_over):
            self._abort()

    def _abort(self) -> None:
        try:
            state, where = self.checkpoint.load(), ""
        except CorruptState:  # what --abort is for: dropping a checkpoint no run can use
            state, where = None, "an unreadable checkpoint"
        drained = [i.id for i in self._instances().values() if i.draining]
        if not (state or where or drained):
            self.report(f"nothing to abort: no rotation of {self.topology.env} is in progress (no checkpoint in "
                        f"{self.checkpoint.where}, no instance marked draining)")
            return
        if drained:
            self.ec2.delete_tags(Resources=drained, Tags=[{"Key": DRAIN_TAG}])
        self.checkpoint.clear()
        where = where or ("{} step {}".format(*self._position(state)) if state else "no checkpoint")
        self.report(f"rotation of {self.topology.env} abandoned ({where}); drain lifted on "
                    f"{', '.join(drained) or 'no instance'}; failback is up to the failover Lambda")

    def _drain(self, az: str, state: State) -> None:
        """Mark the AZ's instance draining and park its tables on the other one, which must be healthy."""
        other = next(a for a in self.order if a != az)
        instances = self._instances()
        current, survivor = self._current(instances, az), self._current(instances, other)
        survivor = self._require_healthy(survivor, other)
        if current:
            until = time.time() + self.timeout + DRAIN_MARGIN_S
            self.ec2.create_tags(Resources=[current.id], Tags=[{"Key": DRAIN_TAG, "Value": drain_mark(until)}])
            instances = self._instances()
            self._move_all(instances, lambda table: table.target == current.id, survivor, "rotate")
        state["old"] = current.id if current else None

    def _replace(self, az: str, state: State) -> None:
        urn = self.topology.urns[az]
        self.report(f"{az}: replacing {state.get('old') or 'instance'} through Pulumi ({urn})")
        self.cli.run("up", "--yes", "--skip-preview", "--target", urn, "--replace", urn, "--target-dependents")

    def _wait(self, az: str, state: State) -> None:
        state["new"] = self._wait_for_replacement(az, state.get("old"))

    def _restore(self, az: str, state: State) -> None:
        """Move the AZ's home tables back to its new instance, one at a time."""
        instances = self._instances()
        fresh = self._require_healthy(instances.get(state["new"]), az)
        homes = self.topology.table_homes
        self._move_all(instances, lambda table: homes[table.id] == az and table.target != fresh.id, fresh, "rotate")

    def _instances(self) -> dict[str, NatInstance]:
        return nat_routes.read_instances(self.ec2, self.topology.stack)

    @staticmethod
    def _current(instances: dict[str, NatInstance], az: str) -> NatInstance | None:
        return nat_routes.home_instance(az, instances)

    def _require_healthy(self, instance: NatInstance | None, az: str) -> NatInstance:
        """`instance` when it is usable (the Lambda's policy) and passes both EC2 status checks; NatError otherwise."""
        if instance is None or not instance.usable(self.policy):
            raise NatError(f"the NAT instance in {az} is not healthy ({instance.state if instance else 'missing'}"
                           f"{', draining' if instance and instance.draining else ''}); egress would stop. Check "
                           f"`invoke nat.status --env {self.topology.env}`, fix it, then rerun to resume")
        checks = status_checks(self.ec2, [instance.id]).get(instance.id)
        if checks != "ok":
            raise NatError(f"the NAT instance in {az} ({instance.id}) has status checks {checks!r}, not ok; "
                           f"wait for them, then rerun to resume")
        return instance

    def _move_all(self, instances: dict[str, NatInstance], wanted: Callable[[nat_routes.RouteTable], bool],
                  target: NatInstance, reason: str) -> None:
        """Move matching tables one at a time, re-reading each; verifies every move landed."""
        tables = nat_routes.read_tables(self.ec2, self.topology.table_homes, instances)
        for table in sorted(tables.values(), key=lambda item: item.id):
            if not wanted(table):
                continue
            move = nat_routes.Move(table.id, table.target, target.id, reason)
            nat_routes.apply(self.ec2, move, instances)
            landed = nat_routes.read_tables(self.ec2, {table.id: table.home_az}, instances)[table.id].target
            if landed != target.id:
                raise NatError(f"{table.id} points at {landed} instead of {target.id} after the move (a concurrent "
                               f"change?); rerun to resume")
            self.report(f"{table.id}: {table.target or 'no route'} -> {target.id} ({target.az})")

    def _wait_for_replacement(self, az: str, old: str | None) -> str:
        deadline = self.clock() + self.timeout
        while True:
            instances = self._instances()
            # adopted by the group's launch hook (its EIP), running, not draining
            fresh = [i for i in instances.values() if i.az == az and i.id != old and i.state == "running"
                     and not i.draining and i.public_ip]
            checks = status_checks(self.ec2, [i.id for i in fresh])
            ready = [i for i in fresh if checks.get(i.id) == "ok" and not i.health.is_down(self.policy)]
            if ready:
                self.report(f"{az}: {ready[0].id} is running and passes status checks")
                return ready[0].id
            if self.clock() >= deadline:
                seen = ", ".join(f"{i.id} {i.state}/{checks.get(i.id, '-')}" for i in fresh) or "no new instance"
                raise NatError(f"{az}: no healthy replacement after {self.timeout:.0f}s ({seen}); routes stay on "
                               f"the other instance. Rerun to keep waiting, or check the instance's console log")
            self.report(f"{az}: waiting for the replacement ({len(fresh)} new instance(s) seen)")
            self.sleep(self.poll)


def policy_of(cfg: StackConfig) -> Policy:
    """The stack's hysteresis, so status and rotation judge health exactly as its Lambda does."""
    return Policy(failure_threshold=cfg.nat.failure_threshold, failback_checks=cfg.nat.failback_checks,
                  failback_min_seconds=cfg.nat.failback_min_seconds)


def topology_for(cfg: StackConfig, cli: PulumiCLI | None = None) -> Topology:
    return Topology.from_outputs(cfg.env, (cli or PulumiCLI(stack=cfg.env)).outputs(), cfg.nat.mode)
